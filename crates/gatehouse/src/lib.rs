//! The `gatehouse` binary's library half: configuration and start-up, so that integration tests
//! start exactly what `gatehouse serve` starts.

pub mod config;
pub mod ldap;
pub mod mail;
pub mod oidc;
pub mod sms;
pub mod startup;
pub mod telemetry;
pub mod tls;
