//! The process: command line, environment, logging, start-up, SIGHUP reload, signals and the
//! orderly stop.

mod cli;
mod entry;
mod environment;
mod limits;
mod logging;
mod reload;
mod run;
mod sd_notify;
mod signals;
mod warmup;

pub use entry::main;
