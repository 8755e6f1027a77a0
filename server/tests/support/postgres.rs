//! A real PostgreSQL for the sink's tests: `initdb` into a scratch folder and `postgres` on a free loopback port,
//! as the `postgres` user when the tests run as root (PostgreSQL refuses to run as root). Restartable on the same
//! port and data, to inject the fault of a database that goes away; stopped, and its folder removed, when dropped.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{free_port, scratch_dir, Proc};

pub struct Postgres {
    server: Option<Proc>,
    pub port: u16,
    dir: PathBuf,
    owner: Option<(u32, u32)>,
}

/// The `postgres` user's uid and gid when this process is root (`None` otherwise: run as ourselves).
fn owner() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions; getpwnam returns a pointer to static storage or null, read at once.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let user = libc::getpwnam(c"postgres".as_ptr());
        assert!(
            !user.is_null(),
            "tests run as root need a postgres user to run PostgreSQL (the Debian package makes one)"
        );
        Some(((*user).pw_uid, (*user).pw_gid))
    }
}

impl Postgres {
    /// A new cluster with a database `replicast`, started.
    pub fn start() -> Postgres {
        let dir = scratch_dir("postgres");
        let owner = owner();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let mut initdb = Command::new("initdb");
        initdb
            .args([
                "-D",
                "data",
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .current_dir(&dir)
            .stdout(Stdio::null());
        if let Some((uid, gid)) = owner {
            initdb.uid(uid).gid(gid);
        }
        assert!(
            initdb
                .status()
                .expect("initdb (PostgreSQL) on PATH")
                .success(),
            "initdb failed"
        );
        let mut pg = Postgres {
            server: None,
            port: free_port(),
            dir,
            owner,
        };
        pg.run();
        let status = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "postgres",
                "-qc",
                "CREATE DATABASE replicast",
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "CREATE DATABASE failed");
        pg
    }

    fn run(&mut self) {
        let mut command = Command::new("postgres");
        command
            .args(["-D", "data", "-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
            ])
            .current_dir(&self.dir)
            .stderr(Stdio::piped());
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        let mut child = command.spawn().expect("postgres on PATH");
        let stderr = child.stderr.take().unwrap();
        let (ready, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut told = false;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if !told && line.contains("ready to accept connections") {
                    let _ = ready.send(());
                    told = true;
                }
            }
        });
        wait.recv_timeout(Duration::from_secs(30))
            .expect("PostgreSQL ready within 30 s");
        self.server = Some(Proc::new(child));
    }

    /// `postgres://` URL of the test database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/replicast", self.port)
    }

    /// The fault: the server stops at once (SIGQUIT: an immediate shutdown, as a crash), and starts again on the
    /// same port and data, recovering from its WAL.
    pub fn crash_and_restart(&mut self) {
        if let Some(mut server) = self.server.take() {
            // SAFETY: kill with a pid of our own child.
            unsafe { libc::kill(server.0.id() as i32, libc::SIGQUIT) };
            let _ = server.0.wait();
        }
        self.run();
    }

    /// A client of the test database.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            // A fast shutdown (SIGINT), so no server process outlives the test.
            // SAFETY: kill with a pid of our own child, not yet waited for.
            unsafe { libc::kill(server.0.id() as i32, libc::SIGINT) };
            let mut server = server;
            let _ = server.0.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
