//! [`PostgresServer`]: a real PostgreSQL server for tests, started from the distribution's
//! binaries (Debian's `postgresql` package: `/usr/lib/postgresql/<version>/bin`) in a temporary
//! directory — `initdb` into it, `postgres` listening on a free port of 127.0.0.1 with its unix
//! socket in the same directory, trust authentication for the `postgres` superuser — and each
//! test gets a database with a random name ([`PostgresServer::create_database`]), so tests run
//! in parallel against one server.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then `initdb` and `postgres` run as
//! the `postgres` system user (the uid/gid are set in the child before `exec`, which is what
//! `runuser -u postgres` would do, minus the extra process in between that would hide the
//! server's pid), and the directory is handed to that user.
//!
//! A dropped server is shut down (SIGQUIT, PostgreSQL's immediate shutdown) and its directory
//! removed. The process-wide [`PostgresServer::shared`] server is never dropped, so a watchdog
//! (a `sh` loop started beside it) shuts it down and removes the directory once the test
//! process is gone, however it ended.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a fresh server may take to accept connections on a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The superuser `initdb` creates, and the system user the server runs as under root.
const SUPERUSER: &str = "postgres";

/// A PostgreSQL server in a temporary directory (see the module docs).
pub struct PostgresServer {
    server: Child,
    watchdog: Option<Child>,
    port: u16,
    dir: Option<TempDir>,
}

impl std::fmt::Debug for PostgresServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresServer")
            .field("pid", &self.server.id())
            .field("port", &self.port)
            .field("dir", &self.dir.as_ref().map(TempDir::path))
            .finish()
    }
}

/// A database of a [`PostgresServer`] with a random name.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// The database's name.
    pub name: String,
    /// A `postgres://` URL of the database for the superuser over TCP.
    pub url: String,
}

impl PostgresServer {
    /// Starts a server of its own; panics with the server's log when it does not come up.
    pub fn start() -> PostgresServer {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("spate-test-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for PostgreSQL: {e}"));
        let user = system_user();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap_or_else(|e| {
                panic!("cannot hand {} to postgres: {e}", dir.path().display())
            });
        }
        init_cluster(&bin, dir.path(), user);
        // A free port can be taken by someone else between our probe and the server's bind: a
        // few attempts make that harmless.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = crate::free_port();
            let mut server = spawn_server(&bin, dir.path(), port, user);
            if wait_ready(&mut server, port) {
                let watchdog = spawn_watchdog(server.id(), dir.path());
                return PostgresServer {
                    server,
                    watchdog,
                    port,
                    dir: Some(dir),
                };
            }
            quit(&mut server);
            last_log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        }
        panic!("PostgreSQL did not start; its log:\n{last_log}");
    }

    /// One server for the whole test process, started on first use; shut down by its watchdog
    /// when the process exits.
    pub fn shared() -> &'static PostgresServer {
        static SHARED: OnceLock<PostgresServer> = OnceLock::new();
        SHARED.get_or_init(PostgresServer::start)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` on this server (superuser, TCP, no password: trust auth).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{database}?connect_timeout=10",
            self.port
        )
    }

    /// Creates a database with a random name starting with `prefix` (lower-case letters,
    /// digits and `_`).
    pub fn create_database(&self, prefix: &str) -> TestDatabase {
        let name = format!("{prefix}_{}", crate::random_suffix().to_ascii_lowercase());
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL server: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        TestDatabase {
            url: self.url(&name),
            name,
        }
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        self.dir
            .as_ref()
            .map(|d| std::fs::read_to_string(d.path().join("server.log")).unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        quit(&mut self.server);
        // The TempDir removes the data directory (root may remove the postgres user's files;
        // otherwise they are our own).
        drop(self.dir.take());
    }
}

/// The directory of `initdb` and `postgres`: `SPATE_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian), else whatever `PATH` finds.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SPATE_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_default()
}

/// The `postgres` user's uid and gid when running as root (PostgreSQL refuses root), else
/// `None`: the server runs as the current user.
fn system_user() -> Option<(u32, u32)> {
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, SUPERUSER])
            .output()
            .unwrap_or_else(|e| panic!("cannot run id: {e}"));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| {
                panic!("running as root needs a '{SUPERUSER}' system user (install postgresql)")
            })
    };
    Some((id("-u"), id("-g")))
}

fn command(bin: &Path, program: &str, user: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(bin.join(program));
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid).env("HOME", "/tmp");
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// `initdb` into `<dir>/data`: trust auth, UTF-8, C locale, no fsync (a test server's data
/// need not survive a power cut; the jobs under test are what gets killed).
fn init_cluster(bin: &Path, dir: &Path, user: Option<(u32, u32)>) {
    let out = command(bin, "initdb", user)
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (install Debian's postgresql package: .ci/setup.d/postgresql.sh)",
                bin.join("initdb").display()
            )
        });
    assert!(
        out.status.success(),
        "initdb failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn spawn_server(bin: &Path, dir: &Path, port: u16, user: Option<(u32, u32)>) -> Child {
    let log = std::fs::File::create(dir.join("server.log"))
        .unwrap_or_else(|e| panic!("cannot create the PostgreSQL log: {e}"));
    let mut cmd = command(bin, "postgres", user);
    cmd.arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
        .arg(dir)
        .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
        .args(["-c", "max_connections=200", "-c", "shared_buffers=32MB"])
        .stdout(Stdio::null())
        .stderr(log);
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.join("postgres").display()))
}

/// Polls a connection until the server accepts one; `false` when it exited or timed out.
fn wait_ready(server: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + READY_TIMEOUT;
    let config =
        format!("host=127.0.0.1 port={port} user={SUPERUSER} dbname=postgres connect_timeout=2");
    while Instant::now() < deadline {
        if let Ok(Some(_)) = server.try_wait() {
            return false;
        }
        if postgres::Client::connect(&config, postgres::NoTls).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Immediate shutdown (SIGQUIT) of the postmaster and its backends, then reaps it.
fn quit(server: &mut Child) {
    if let Ok(None) = server.try_wait() {
        let _ = Command::new("kill")
            .args(["-QUIT", &server.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = server.kill();
    }
    let _ = server.wait();
}

/// A `sh` loop that outlives this process: once it is gone, it shuts the server down and
/// removes `dir` (the shared server is a static, never dropped).
fn spawn_watchdog(server_pid: u32, dir: &Path) -> Option<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(
            r#"while kill -0 "$0" 2>/dev/null; do sleep 1; done
               kill -QUIT "$1" 2>/dev/null
               n=0; while kill -0 "$1" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.2; n=$((n+1)); done
               rm -rf "$2""#,
        )
        .arg(std::process::id().to_string())
        .arg(server_pid.to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_starts_creates_databases_and_is_removed_on_drop() {
        let server = PostgresServer::start();
        let a = server.create_database("t");
        let b = server.create_database("t");
        assert_ne!(a.name, b.name);
        let mut client = postgres::Client::connect(&a.url, postgres::NoTls).unwrap();
        let row = client.query_one("SELECT current_database()", &[]).unwrap();
        assert_eq!(row.get::<_, String>(0), a.name);
        let dir = server.dir.as_ref().unwrap().path().to_path_buf();
        let pid = server.server.id();
        drop(client);
        drop(server);
        assert!(!dir.exists(), "{} left behind", dir.display());
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!alive.success(), "postgres {pid} still running");
    }
}
