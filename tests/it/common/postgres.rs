//! A throwaway Postgres cluster for the fleet tests: `initdb` into a temporary directory,
//! `pg_ctl start` listening on a Unix socket in that directory only (no TCP port that
//! another process could take between a stop and a start), stopped and removed when dropped. Run as the
//! `postgres` user when the tests run as root (Postgres refuses root). Needs Debian's
//! `postgresql` (`.ci/run` installs it and sets `CI_REQUIRE_POSTGRES=1`); elsewhere a test
//! says it was skipped.

use std::path::PathBuf;
use std::process::Command;

pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    as_postgres: bool,
}

/// Where `initdb` and `pg_ctl` are: Debian keeps them out of PATH.
fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

impl PgCluster {
    /// A running cluster, or `None` (skipped) when Postgres is not installed.
    pub fn start() -> Option<PgCluster> {
        let Some(bin) = bin_dir() else {
            assert!(
                std::env::var_os("CI_REQUIRE_POSTGRES").is_none(),
                "CI_REQUIRE_POSTGRES is set but Postgres is missing"
            );
            eprintln!("SKIPPED: Postgres is not installed (apt-get install postgresql); .ci/run runs this test");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        if as_postgres {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
            assert!(status.success(), "chown the cluster directory to postgres");
        }
        // Only names the socket file (`.s.PGSQL.<port>`) in the cluster's own directory.
        let port = 5432;
        let cluster = PgCluster { bin, dir, port, as_postgres };
        let data = cluster.data();
        cluster.run("initdb", &["-D", &data, "-A", "trust", "-U", "gateway", "--no-sync", "-E", "UTF8"]);
        cluster.start_server();
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let output = command.args(args).output().unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            output.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts (or restarts) the server on its port, waiting until it accepts connections.
    /// `fsync=off` only: a commit still reaches the OS before it is acknowledged, so an
    /// immediate stop (a crash of Postgres, not of the machine) loses nothing committed.
    pub fn start_server(&self) {
        let options = format!("-p {} -k {} -c listen_addresses= -c fsync=off", self.port, self.dir.path().display());
        let log = self.dir.path().join("server.log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"]);
    }

    /// Stops the server at once (connections are cut, as in a crash).
    pub fn stop_server(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }

    /// The URL of database `postgres` on this cluster (its socket directory as the host).
    pub fn url(&self) -> String {
        format!("postgresql://gateway:secret@/postgres?host={}&port={}", self.dir.path().display(), self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let data = self.data();
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let _ = command.args(["-D", &data, "-m", "immediate", "stop"]).output();
    }
}
