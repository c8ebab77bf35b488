//! A real LDAP directory for tests: OpenLDAP's `slapd` (Debian packages `slapd` and
//! `ldap-utils`), private to one test. It runs from a temporary directory with its own
//! `cn=config` (loaded with `slapadd`), an mdb database for `dc=example,dc=org` and a free
//! loopback port, and is filled with a small tree through `ldapadd`. Tests change the directory
//! at run time through `ldapmodify`, as an administrator would, and can stop and restart it.
//!
//! The tree:
//!
//! ```text
//! dc=example,dc=org
//! ├── ou=people
//! │   ├── uid=alice   alice-pass-1   mail alice@example.org
//! │   ├── uid=bob     bob-pass-1     employeeType ldap-operators
//! │   └── uid=carol   carol-pass-1   (in no group)
//! └── ou=groups       (groupOfNames)
//!     ├── cn=plant-admins    member alice
//!     └── cn=plant-viewers   members alice, bob
//! ```
//!
//! `groupOfNames` requires at least one `member`, so every group also lists
//! [`PLACEHOLDER_MEMBER`], a DN that names no entry; removing the last real member then works.
//!
//! Without `slapd` or `ldap-utils` the test fails loudly: it is never skipped.

use std::fs::OpenOptions;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::ports::free_port;

/// The suffix of the directory.
pub const BASE_DN: &str = "dc=example,dc=org";
/// The root DN: the service account of the tests (it bypasses the access rules).
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
/// Where the users are.
pub const PEOPLE_DN: &str = "ou=people,dc=example,dc=org";
/// Where the groups are.
pub const GROUPS_DN: &str = "ou=groups,dc=example,dc=org";
/// A `member` value of every group that names no entry (`groupOfNames` needs one member).
pub const PLACEHOLDER_MEMBER: &str = "cn=placeholder,dc=example,dc=org";
/// The group of alice.
pub const PLANT_ADMINS: &str = "plant-admins";
/// The group of alice and bob.
pub const PLANT_VIEWERS: &str = "plant-viewers";
/// alice's password.
pub const ALICE_PASSWORD: &str = "alice-pass-1";
/// bob's password.
pub const BOB_PASSWORD: &str = "bob-pass-1";
/// carol's password.
pub const CAROL_PASSWORD: &str = "carol-pass-1";
/// bob's `employeeType` (a role name, for the attribute mode).
pub const BOB_EMPLOYEE_TYPE: &str = "ldap-operators";

/// Longest wait for slapd to answer a bind.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two polls.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A running slapd on a free loopback port, killed on drop.
pub struct LdapServer {
    child: Option<Child>,
    port: u16,
    root_password: String,
    slapd: PathBuf,
    directory: TempDir,
}

impl LdapServer {
    /// Creates the directory, starts slapd, waits until the root DN can bind and loads the tree.
    /// Panics (never skips) if slapd or ldap-utils are missing or slapd does not come up.
    pub fn start() -> LdapServer {
        let slapd = program("slapd", "/usr/sbin/slapd", "slapd");
        let slapadd = program("slapadd", "/usr/sbin/slapadd", "slapd");
        for tool in ["ldapwhoami", "ldapadd", "ldapmodify", "ldapsearch"] {
            program(tool, &format!("/usr/bin/{tool}"), "ldap-utils");
        }
        let directory = tempfile::tempdir().expect("a temporary directory");
        // A password of this instance only: a readiness poll that reached another test's slapd
        // (which took the port in between) fails instead of passing.
        let root_password = format!("root-{}", uuid::Uuid::new_v4().simple());
        std::fs::create_dir(directory.path().join("slapd.d")).expect("slapd.d");
        std::fs::create_dir(directory.path().join("db")).expect("db directory");
        let config = directory.path().join("config.ldif");
        std::fs::write(&config, config_ldif(directory.path(), &root_password))
            .expect("config.ldif");
        let output = Command::new(&slapadd)
            .args(["-n0", "-F"])
            .arg(directory.path().join("slapd.d"))
            .arg("-l")
            .arg(&config)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", slapadd.display()));
        assert!(
            output.status.success(),
            "slapadd of the configuration failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );

        let mut server = LdapServer {
            child: None,
            port: 0,
            root_password,
            slapd,
            directory,
        };
        // A port found free may be taken before slapd binds it: try a few.
        let mut last_failure = String::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.launch() {
                Ok(()) => {
                    server.ldif("ldapadd", &tree_ldif());
                    return server;
                }
                Err(reason) => last_failure = reason,
            }
        }
        panic!("slapd did not start: {last_failure}");
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// The loopback port slapd listens on (no TLS).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password of [`ROOT_DN`] (different for every instance).
    pub fn root_password(&self) -> &str {
        &self.root_password
    }

    /// The DN of user `uid`.
    pub fn user_dn(uid: &str) -> String {
        format!("uid={uid},{PEOPLE_DN}")
    }

    /// The DN of group `cn`.
    pub fn group_dn(cn: &str) -> String {
        format!("cn={cn},{GROUPS_DN}")
    }

    /// Adds user `uid` to group `group` (a `cn` under [`GROUPS_DN`]).
    pub fn add_member(&self, group: &str, uid: &str) {
        self.modify(&format!(
            "dn: {}\nchangetype: modify\nadd: member\nmember: {}\n",
            Self::group_dn(group),
            Self::user_dn(uid)
        ));
    }

    /// Removes user `uid` from group `group`.
    pub fn remove_member(&self, group: &str, uid: &str) {
        self.modify(&format!(
            "dn: {}\nchangetype: modify\ndelete: member\nmember: {}\n",
            Self::group_dn(group),
            Self::user_dn(uid)
        ));
    }

    /// Sets the password of user `uid` (stored in plain text; slapd compares it on bind).
    pub fn set_password(&self, uid: &str, password: &str) {
        self.modify(&format!(
            "dn: {}\nchangetype: modify\nreplace: userPassword\nuserPassword: {password}\n",
            Self::user_dn(uid)
        ));
    }

    /// Replaces the `employeeType` values of user `uid` (none removes the attribute).
    pub fn set_employee_types(&self, uid: &str, types: &[&str]) {
        let mut change = format!(
            "dn: {}\nchangetype: modify\nreplace: employeeType\n",
            Self::user_dn(uid)
        );
        for value in types {
            change.push_str(&format!("employeeType: {value}\n"));
        }
        self.modify(&change);
    }

    /// Adds an `inetOrgPerson` `uid` under [`PEOPLE_DN`] with a password and `employeeType`s.
    pub fn add_user(&self, uid: &str, password: &str, employee_types: &[&str]) {
        let mut entry = format!(
            "dn: {}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n\
             mail: {uid}@example.org\nuserPassword: {password}\n",
            Self::user_dn(uid)
        );
        for value in employee_types {
            entry.push_str(&format!("employeeType: {value}\n"));
        }
        self.ldif("ldapadd", &entry);
    }

    /// Applies an LDIF change record (`changetype: …`) as the root DN; panics if refused.
    pub fn modify(&self, ldif: &str) {
        self.ldif("ldapmodify", ldif);
    }

    /// Searches the subtree of [`BASE_DN`] as the root DN with `filter`; returns the LDIF
    /// (`ldapsearch -LLL`) of the entries found, with `attributes` (all user attributes if empty).
    pub fn search(&self, filter: &str, attributes: &[&str]) -> String {
        let output = self.run(
            Command::new("ldapsearch")
                .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H"])
                .arg(self.url())
                .args(["-D", ROOT_DN, "-w", &self.root_password, "-b", BASE_DN])
                .arg(filter)
                .args(attributes),
        );
        self.check("ldapsearch", &output);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Binds as `dn` with `password` through `ldapwhoami`; returns whether slapd accepted it.
    pub fn can_bind(&self, dn: &str, password: &str) -> bool {
        self.whoami(dn, password).status.success()
    }

    /// Stops slapd (kills it and waits for it); the data stays for [`LdapServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts slapd again on the same port with the same data; panics if it does not come up.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(reason) = self.launch() {
            panic!("slapd did not restart on port {}: {reason}", self.port);
        }
    }

    /// What slapd logged so far (`-d stats`: every connection, bind, search and result).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.directory.path().join("slapd.log")
    }

    /// Spawns slapd on `self.port` and waits until the root DN binds. On failure the child is
    /// gone and the reason carries the log.
    fn launch(&mut self) -> Result<(), String> {
        // Appended to, so that a restart keeps what came before.
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("the slapd log file");
        let stderr = log.try_clone().expect("the slapd log file");
        // Any `-d` keeps slapd in the foreground, so the child is slapd itself.
        let mut child = Command::new(&self.slapd)
            .args(["-d", "stats", "-F"])
            .arg(self.directory.path().join("slapd.d"))
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{}/", self.port))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", self.slapd.display()));
        let deadline = Instant::now() + START_TIMEOUT;
        let failure = loop {
            match child.try_wait() {
                Ok(Some(status)) => break format!("slapd exited with {status}"),
                Ok(None) => {}
                Err(error) => break format!("cannot watch slapd: {error}"),
            }
            let output = self.whoami(ROOT_DN, &self.root_password);
            if output.status.success() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                break format!(
                    "the root DN could not bind within {START_TIMEOUT:?}: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        };
        let _ = child.kill();
        let _ = child.wait();
        Err(format!("{failure}; its log:\n{}", self.log()))
    }

    fn whoami(&self, dn: &str, password: &str) -> Output {
        self.run(
            Command::new("ldapwhoami")
                .args(["-x", "-o", "nettimeout=2", "-H"])
                .arg(self.url())
                .args(["-D", dn, "-w", password]),
        )
    }

    /// Feeds `ldif` to `tool` (`ldapadd` or `ldapmodify`) as the root DN; panics if refused.
    fn ldif(&self, tool: &str, ldif: &str) {
        let path = self
            .directory
            .path()
            .join(format!("change-{}.ldif", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, ldif).expect("an LDIF file");
        let output = self.run(
            Command::new(tool)
                .args(["-x", "-H"])
                .arg(self.url())
                .args(["-D", ROOT_DN, "-w", &self.root_password, "-f"])
                .arg(&path),
        );
        self.check(&format!("{tool} of\n{ldif}"), &output);
    }

    fn run(&self, command: &mut Command) -> Output {
        command
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
    }

    fn check(&self, what: &str, output: &Output) {
        assert!(
            output.status.success(),
            "{what}\nfailed ({}): {}{}\nslapd log:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }
}

impl Drop for LdapServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `path` if it exists, else `name` if it is on `PATH`; panics naming the Debian package.
fn program(name: &str, path: &str, package: &str) -> PathBuf {
    if Path::new(path).exists() {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).exists()))
        .unwrap_or(false);
    if on_path {
        return PathBuf::from(name);
    }
    panic!(
        "the LDAP tests need {name} (Debian package {package}): `.ci/run` installs it, or run \
         `echo \"slapd slapd/no_configuration boolean true\" | debconf-set-selections && \
         apt-get install -y --no-install-recommends slapd ldap-utils`"
    );
}

/// The `cn=config` of the instance in `directory`: the schemas, the mdb backend and the rules
/// that let a user bind with (but never read) its password and everyone read the rest.
fn config_ldif(directory: &Path, root_password: &str) -> String {
    let directory = directory.display();
    let mut config = format!(
        "dn: cn=config\n\
         objectClass: olcGlobal\n\
         cn: config\n\
         olcPidFile: {directory}/slapd.pid\n\
         olcArgsFile: {directory}/slapd.args\n\
         \n\
         dn: cn=module{{0}},cn=config\n\
         objectClass: olcModuleList\n\
         cn: module{{0}}\n\
         olcModulePath: /usr/lib/ldap\n\
         olcModuleLoad: back_mdb\n\
         \n\
         dn: cn=schema,cn=config\n\
         objectClass: olcSchemaConfig\n\
         cn: schema\n\
         \n"
    );
    for schema in ["core", "cosine", "nis", "inetorgperson"] {
        let path = format!("/etc/ldap/schema/{schema}.ldif");
        assert!(
            Path::new(&path).exists(),
            "the LDAP tests need {path} (Debian package slapd)"
        );
        config.push_str(&format!("include: file://{path}\n\n"));
    }
    config.push_str(&format!(
        "dn: olcDatabase={{-1}}frontend,cn=config\n\
         objectClass: olcDatabaseConfig\n\
         objectClass: olcFrontendConfig\n\
         olcDatabase: {{-1}}frontend\n\
         \n\
         dn: olcDatabase={{0}}config,cn=config\n\
         objectClass: olcDatabaseConfig\n\
         olcDatabase: {{0}}config\n\
         olcAccess: {{0}}to * by * none\n\
         \n\
         dn: olcDatabase={{1}}mdb,cn=config\n\
         objectClass: olcDatabaseConfig\n\
         objectClass: olcMdbConfig\n\
         olcDatabase: {{1}}mdb\n\
         olcSuffix: {BASE_DN}\n\
         olcRootDN: {ROOT_DN}\n\
         olcRootPW: {root_password}\n\
         olcDbDirectory: {directory}/db\n\
         olcDbMaxSize: 16777216\n\
         olcAccess: {{0}}to attrs=userPassword by self write by anonymous auth by * none\n\
         olcAccess: {{1}}to * by * read\n"
    ));
    config
}

/// The entries of the tree (see the module documentation).
fn tree_ldif() -> String {
    let mut ldif = format!(
        "dn: {BASE_DN}\n\
         objectClass: dcObject\n\
         objectClass: organization\n\
         dc: example\n\
         o: Example\n\
         \n\
         dn: {PEOPLE_DN}\n\
         objectClass: organizationalUnit\n\
         ou: people\n\
         \n\
         dn: {GROUPS_DN}\n\
         objectClass: organizationalUnit\n\
         ou: groups\n\
         \n"
    );
    let people = [
        ("alice", "Liddell", ALICE_PASSWORD, None),
        ("bob", "Builder", BOB_PASSWORD, Some(BOB_EMPLOYEE_TYPE)),
        ("carol", "Danvers", CAROL_PASSWORD, None),
    ];
    for (uid, surname, password, employee_type) in people {
        ldif.push_str(&format!(
            "dn: {}\n\
             objectClass: inetOrgPerson\n\
             uid: {uid}\n\
             cn: {uid} {surname}\n\
             sn: {surname}\n\
             mail: {uid}@example.org\n\
             userPassword: {password}\n",
            LdapServer::user_dn(uid)
        ));
        if let Some(value) = employee_type {
            ldif.push_str(&format!("employeeType: {value}\n"));
        }
        ldif.push('\n');
    }
    let groups = [
        (PLANT_ADMINS, &["alice"][..]),
        (PLANT_VIEWERS, &["alice", "bob"][..]),
    ];
    for (cn, members) in groups {
        ldif.push_str(&format!(
            "dn: {}\nobjectClass: groupOfNames\ncn: {cn}\nmember: {PLACEHOLDER_MEMBER}\n",
            LdapServer::group_dn(cn)
        ));
        for uid in members {
            ldif.push_str(&format!("member: {}\n", LdapServer::user_dn(uid)));
        }
        ldif.push('\n');
    }
    ldif
}

/// A TCP listener on a free loopback port that accepts connections and never answers: an LDAP
/// server that hangs. Closed on drop.
pub struct SilentServer {
    port: u16,
    _listener: TcpListener,
}

impl SilentServer {
    /// Binds the listener (the kernel completes the handshakes; nothing is ever read or sent).
    pub fn start() -> SilentServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a loopback listener");
        let port = listener.local_addr().expect("its address").port();
        SilentServer {
            port,
            _listener: listener,
        }
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }
}
