//! Permissions and the permission engine: which (context, operation, resource) a set of
//! permissions allows. HTTP and MQTT checks both go through [`PermissionSet::allows`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::CoreError;
use crate::topic::{TopicFilter, TopicName};

/// What a permission grants: reading (HTTP GET, MQTT subscribe), writing (other HTTP methods,
/// MQTT publish), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operation {
    /// Read access.
    #[serde(rename = "read")]
    Read,
    /// Write access.
    #[serde(rename = "write")]
    Write,
    /// Read and write access.
    #[serde(rename = "readWrite")]
    ReadWrite,
}

impl Operation {
    /// Whether holding `self` grants the requested access `wanted` (`Read` or `Write`).
    pub fn grants(self, wanted: Operation) -> bool {
        self == Operation::ReadWrite || self == wanted
    }

    /// The wire name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::ReadWrite => "readWrite",
        }
    }
}

impl FromStr for Operation {
    type Err = CoreError;
    fn from_str(text: &str) -> Result<Self, CoreError> {
        match text {
            "read" => Ok(Operation::Read),
            "write" => Ok(Operation::Write),
            "readWrite" => Ok(Operation::ReadWrite),
            _ => Err(CoreError::invalid(
                "operation",
                "must be one of read, write, readWrite",
            )),
        }
    }
}

/// Where a permission applies: MQTT topics or HTTP paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Context {
    /// MQTT topics.
    Mqtt,
    /// HTTP request paths.
    Http,
}

impl Context {
    /// The wire name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Context::Mqtt => "mqtt",
            Context::Http => "http",
        }
    }
}

impl FromStr for Context {
    type Err = CoreError;
    fn from_str(text: &str) -> Result<Self, CoreError> {
        match text {
            "mqtt" => Ok(Context::Mqtt),
            "http" => Ok(Context::Http),
            _ => Err(CoreError::invalid("context", "must be one of mqtt, http")),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission's resource: a topic filter; in the HTTP context it must begin with `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resource(TopicFilter);

impl Resource {
    /// Parses a resource for the given context.
    pub fn parse(text: &str, context: Context) -> Result<Self, CoreError> {
        let filter = TopicFilter::parse(text, "resource")?;
        if context == Context::Http && !(text.starts_with('/') || text == "#" || text == "+") {
            return Err(CoreError::invalid(
                "resource",
                "an http resource must be a path beginning with '/' (or the wildcard '#')",
            ));
        }
        Ok(Self(filter))
    }

    /// The filter as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The underlying topic filter.
    pub fn filter(&self) -> &TopicFilter {
        &self.0
    }
}

/// The grant of a permission, without its identity: what is checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grant {
    /// The topic filter or path filter.
    pub resource: Resource,
    /// Read, write or both.
    pub operation: Operation,
    /// MQTT or HTTP.
    pub context: Context,
}

/// A stored permission of a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// Stable id.
    pub id: Uuid,
    /// What it grants.
    pub grant: Grant,
}

/// The compiled permissions of a principal, ready for the hot path. Shared: a clone (one per
/// token check served from the cache) copies no grant.
#[derive(Debug, Clone, Default)]
pub struct PermissionSet {
    grants: std::sync::Arc<[Grant]>,
}

impl PermissionSet {
    /// Compiles a set from grants (duplicates are harmless).
    pub fn new(grants: impl IntoIterator<Item = Grant>) -> Self {
        Self {
            grants: grants.into_iter().collect(),
        }
    }

    /// Whether `wanted` (Read or Write) on the concrete `resource` is allowed in `context`.
    pub fn allows(&self, context: Context, wanted: Operation, resource: &TopicName) -> bool {
        self.grants.iter().any(|grant| {
            grant.context == context
                && grant.operation.grants(wanted)
                && grant.resource.filter().matches(resource)
        })
    }

    /// Whether a subscription filter `requested` is covered in `context` for `wanted`.
    pub fn allows_filter(
        &self,
        context: Context,
        wanted: Operation,
        requested: &TopicFilter,
    ) -> bool {
        self.grants.iter().any(|grant| {
            grant.context == context
                && grant.operation.grants(wanted)
                && grant.resource.filter().covers(requested)
        })
    }

    /// Whether an HTTP request with `method` on `path` is allowed: GET, HEAD and OPTIONS need
    /// read access, every other method needs write access.
    pub fn allows_http(&self, method: &str, path: &str) -> bool {
        let wanted = match method {
            "GET" | "HEAD" | "OPTIONS" => Operation::Read,
            _ => Operation::Write,
        };
        self.allows(Context::Http, wanted, &TopicName::from_http_path(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(resource: &str, operation: Operation, context: Context) -> Grant {
        Grant {
            resource: Resource::parse(resource, context).unwrap(),
            operation,
            context,
        }
    }

    #[test]
    fn http_methods_map_to_operations() {
        let set = PermissionSet::new([
            grant("/api/users/#", Operation::Read, Context::Http),
            grant("/api/roles/#", Operation::Write, Context::Http),
        ]);
        assert!(set.allows_http("GET", "/api/users/1"));
        assert!(set.allows_http("HEAD", "/api/users"));
        assert!(!set.allows_http("POST", "/api/users"));
        assert!(set.allows_http("DELETE", "/api/roles/1"));
        assert!(!set.allows_http("GET", "/api/roles/1"));
    }

    #[test]
    fn contexts_do_not_leak() {
        let set = PermissionSet::new([grant("#", Operation::ReadWrite, Context::Mqtt)]);
        assert!(!set.allows_http("GET", "/api/session"));
        let topic = TopicName::parse("a/b", "t").unwrap();
        assert!(set.allows(Context::Mqtt, Operation::Write, &topic));
    }

    #[test]
    fn http_resources_must_be_paths() {
        assert!(Resource::parse("api/users", Context::Http).is_err());
        assert!(Resource::parse("/api/users", Context::Http).is_ok());
        assert!(Resource::parse("#", Context::Http).is_ok());
        assert!(Resource::parse("api/users", Context::Mqtt).is_ok());
    }

    #[test]
    fn operation_wire_names_round_trip() {
        for op in [Operation::Read, Operation::Write, Operation::ReadWrite] {
            assert_eq!(op.as_str().parse::<Operation>().unwrap(), op);
        }
        assert!("READ".parse::<Operation>().is_err());
        assert!("ftp".parse::<Context>().is_err());
    }
}
