//! Gatehouse's identity core: domain types parsed at the edge, the permission engine,
//! credentials, tokens and every identity operation. No HTTP and no SQL live here: the dialects
//! (crate `gatehouse-server`) translate wire formats into these types, and the storage
//! (crate `gatehouse-store`) implements [`store::Store`].

pub mod accounts;
pub mod apikeys;
pub mod auth;
pub mod broker;
pub mod changes;
pub mod clock;
pub mod directory;
pub mod error;
pub mod federation;
pub mod hashing;
pub mod mail;
pub mod maintenance;
pub mod mfa;
pub mod model;
pub mod names;
pub mod oauth2;
pub mod oauth2_login;
pub mod pairs;
pub mod password;
pub mod permission;
pub mod pki;
pub mod ratelimit;
pub mod registry;
pub mod roles;
pub mod sealing;
pub mod security;
pub mod service;
pub mod signup;
pub mod store;
pub mod tokens;
pub mod topic;
pub mod topic_tree;
pub mod trust;
pub mod users;

pub use error::{AuthFailure, CoreError, CoreResult, PolicyBreach, Rejection};
pub use service::Gatehouse;
