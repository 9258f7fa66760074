//! A whole private deployment the campaign may break: its own PostgreSQL cluster and NATS
//! server (own directories and ports, so faults never touch anything else), and several
//! `bountyline serve` and `bountyline work` processes. Only processes started here are ever
//! signalled, by their PID.

use anyhow::{bail, Context};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a restarted process may take to become ready (the campaign's promise).
pub const READY_WITHIN: Duration = Duration::from_secs(10);

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Sends `signal` (e.g. `KILL`, `STOP`, `CONT`) to one of our own children.
pub fn signal(child: &Child, signal: &str) -> anyhow::Result<()> {
    run(Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string()))
}

/// A private PostgreSQL 15 cluster. PostgreSQL refuses to run as root, so as root it runs as
/// the `postgres` user, in a directory that user can reach.
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    pub port: u16,
    as_user: Vec<String>,
}

impl Postgres {
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        let bin = PathBuf::from(
            std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()),
        );
        let as_user: Vec<String> = if is_root() {
            vec![
                "runuser".into(),
                "-u".into(),
                "postgres".into(),
                "--".into(),
            ]
        } else {
            Vec::new()
        };
        fs::create_dir_all(dir)?;
        if !as_user.is_empty() {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir))?;
        }
        let pg = Self {
            bin,
            data: dir.join("pgdata"),
            log: dir.join("postgres.log"),
            port: free_port()?,
            as_user,
        };
        pg.command("initdb")
            .args([
                "-U",
                "bountyline",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
                "-D",
            ])
            .arg(&pg.data)
            .output()
            .context("initdb")?
            .status
            .success()
            .then_some(())
            .context("initdb failed")?;
        Ok(pg)
    }

    fn command(&self, tool: &str) -> Command {
        let tool = self.bin.join(tool);
        match self.as_user.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(tool);
                cmd
            }
            None => Command::new(tool),
        }
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://bountyline@127.0.0.1:{}/{database}", self.port)
    }

    pub fn start(&self) -> anyhow::Result<()> {
        // Durable as in production: fsync and synchronous_commit stay on.
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
             -c max_connections=300 -c fsync=on -c synchronous_commit=on",
            self.port
        );
        run(self
            .command("pg_ctl")
            .args(["-w", "-t", "60", "-o", &options, "-l"])
            .arg(&self.log)
            .arg("-D")
            .arg(&self.data)
            .arg("start"))
    }

    /// `immediate`: a crash, as far as the data is concerned.
    pub fn stop(&self, mode: &str) -> anyhow::Result<()> {
        run(self
            .command("pg_ctl")
            .args(["-w", "-m", mode, "-D"])
            .arg(&self.data)
            .arg("stop"))
    }
}

/// A private NATS server with JetStream, every write fsynced (as `nats.conf`).
pub struct Nats {
    bin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl Nats {
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        let bin = std::env::var("NATS_SERVER_BIN")
            .map(PathBuf::from)
            .context("NATS_SERVER_BIN is not set (scripts/campaign sets it)")?;
        let port = free_port()?;
        let store = dir.join("nats");
        fs::create_dir_all(&store)?;
        let config = dir.join("nats.conf");
        fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n",
                store.display()
            ),
        )?;
        Ok(Self {
            bin,
            config,
            log: dir.join("nats.log"),
            port,
            child: None,
        })
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn start(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting nats-server")?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                bail!("nats-server did not listen on {} in time", self.port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            signal(&child, "TERM")?;
            child.wait()?;
        }
        Ok(())
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Api,
    Worker,
}

/// One `bountyline serve` or `bountyline work` process, restartable.
pub struct Process {
    pub role: Role,
    pub name: String,
    pub port: Option<u16>,
    bin: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    stopped: bool,
}

impl Process {
    pub fn new(
        role: Role,
        index: usize,
        bin: &Path,
        env: &[(String, String)],
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let name = match role {
            Role::Api => format!("api-{index}"),
            Role::Worker => format!("worker-{index}"),
        };
        let port = match role {
            Role::Api => Some(free_port()?),
            Role::Worker => None,
        };
        let mut env = env.to_vec();
        if let Some(port) = port {
            env.push(("BOUNTYLINE_HTTP__PORT".into(), port.to_string()));
        }
        Ok(Self {
            role,
            log: dir.join(format!("{name}.log")),
            name,
            port,
            bin: bin.to_owned(),
            env,
            child: None,
            stopped: false,
        })
    }

    pub fn base_url(&self) -> Option<String> {
        self.port.map(|p| format!("http://127.0.0.1:{p}"))
    }

    /// Starts the process and returns how long it took to become ready: an API answers
    /// `/health/ready`; a worker logs that its parts run.
    pub async fn start(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let offset = log.seek(SeekFrom::End(0))?;
        let subcommand = match self.role {
            Role::Api => "serve",
            Role::Worker => "work",
        };
        let child = Command::new(&self.bin)
            .arg(subcommand)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        self.child = Some(child);
        self.stopped = false;
        let client = reqwest::Client::new();
        // Ready well past the promise is still reported (as a violation), not hidden.
        let deadline = started + READY_WITHIN * 6;
        loop {
            let ready = match self.base_url() {
                Some(base) => client
                    .get(format!("{base}/health/ready"))
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
                None => self.logged_since(offset, "workers running")?,
            };
            if ready {
                return Ok(started.elapsed());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("{} exited while starting: {status}", self.name);
            }
            if Instant::now() > deadline {
                bail!("{} was not ready after {:?}", self.name, READY_WITHIN * 6);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn logged_since(&self, offset: u64, marker: &str) -> anyhow::Result<bool> {
        let mut file = File::open(&self.log)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        Ok(text.contains(marker))
    }

    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            signal(&child, "KILL")?;
            child.wait()?;
        }
        Ok(())
    }

    /// Ends it gracefully (SIGTERM), as an operator would.
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            if self.stopped {
                signal(&child, "CONT")?;
            }
            signal(&child, "TERM")?;
            child.wait()?;
        }
        Ok(())
    }

    pub fn pause(&mut self) -> anyhow::Result<()> {
        if let Some(child) = &self.child {
            signal(child, "STOP")?;
            self.stopped = true;
        }
        Ok(())
    }

    pub fn resume(&mut self) -> anyhow::Result<()> {
        if let Some(child) = &self.child {
            signal(child, "CONT")?;
            self.stopped = false;
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
