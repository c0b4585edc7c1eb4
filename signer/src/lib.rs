//! Mints AWS IAM auth tokens for Aurora/RDS PostgreSQL and keeps them fresh.
//!
//! [`generate_auth_token`] is the pure minting function (byte-for-byte botocore's
//! `generate_db_auth_token`); [`Signer`] adds credentials from the AWS default chain, a token
//! cache and a background refresher.

#![forbid(unsafe_code)]

mod cache;
mod clock;
mod credentials;
mod encode;
mod error;
pub mod policy;
mod signer;
mod timefmt;
mod token;

pub use clock::{Clock, SystemClock, TokioClock};
pub use credentials::CredentialOptions;
pub use encode::rfc3986;
pub use error::SignerError;
pub use signer::{Signer, SignerStatus, TokenStatus};
pub use token::{generate_auth_token, region_from_host, AuthToken, TokenRequest, TOKEN_LIFETIME};
