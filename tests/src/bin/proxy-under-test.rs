//! The real `rds-iam-proxy` entry point, built inside this package so end-to-end tests can
//! find it through `CARGO_BIN_EXE_proxy-under-test`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    rds_iam_proxy::main()
}
