//! The `gatehouse` binary's library half: configuration, start-up and the maintenance commands,
//! so that integration tests start exactly what `gatehouse serve` starts.

pub mod config;
pub mod ldap;
pub mod mail;
pub mod maintenance;
pub mod oidc;
pub mod signup;
pub mod sms;
pub mod startup;
pub mod telemetry;
pub mod tls;
