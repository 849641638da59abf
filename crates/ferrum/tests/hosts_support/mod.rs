//! Simulated hosts on one machine for `many_hosts.rs`: a private LAN of network namespaces
//! (`ip netns` + veth), the processes each host runs, and the database host's Postgres and
//! S3-compatible server.
//!
//! The LAN is 10.213.N.0/24 on a bridge inside a hub namespace (a fresh namespace has no
//! firewall, unlike the root one, whose Docker rules drop bridged traffic); the root namespace,
//! where the test and the Docker engine run, joins it as 10.213.N.1. N is claimed with a lock
//! file under /run, so parallel runs take different N; a run that finds N's lock free removes
//! what a killed run left under that N. Every process is killed and every namespace deleted
//! when the [`Lan`] drops, also when the test panics.

#![allow(dead_code)]

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the per-N lock files live.
const LOCKS: &str = "/run/ferrum-many-hosts";

/// A private LAN of simulated hosts and the processes they run.
pub struct Lan {
    n: u16,
    /// Held for the life of the LAN: the claim on N.
    _lock: File,
    pub dir: PathBuf,
    hosts: Vec<String>,
    procs: Vec<Proc>,
}

/// A simulated host: a network namespace with one address on the LAN.
#[derive(Clone)]
pub struct Host {
    pub name: String,
    pub ip: String,
    netns: String,
}

struct Proc {
    name: String,
    child: Child,
    /// Runners get SIGTERM first: they remove their parked containers.
    gentle: bool,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip_quiet(args: &[&str]) {
    let _ = Command::new("ip").args(args).output();
}

impl Lan {
    /// Claims a free N, makes the hub with its bridge and joins the root namespace to it.
    pub fn new() -> Lan {
        std::fs::create_dir_all(LOCKS).expect("lock dir");
        let start = std::process::id() as u16 % 200;
        let (n, lock) = (0..200)
            .map(|i| (start + i) % 200 + 20)
            .find_map(|n| {
                let lock = File::create(format!("{LOCKS}/{n}.lock")).ok()?;
                lock.try_lock().ok()?;
                let in_use = Command::new("ip")
                    .args(["-4", "route", "show", &format!("10.213.{n}.0/24")])
                    .output()
                    .map(|o| !o.stdout.is_empty())
                    .unwrap_or(true);
                // A route we did not make (ours all go through fmhN): not ours to take.
                let ours = Command::new("ip")
                    .args(["link", "show", &format!("fmh{n}")])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false);
                (!in_use || ours).then_some((n, lock))
            })
            .expect("a free LAN number");
        remove_leftovers(n);
        let dir =
            std::env::temp_dir().join(format!("ferrum-many-hosts-{n}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let lan = Lan {
            n,
            _lock: lock,
            dir,
            hosts: Vec::new(),
            procs: Vec::new(),
        };
        let hub = lan.netns("hub");
        ip(&["netns", "add", &hub]);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        let root = format!("fmh{n}");
        ip(&[
            "link", "add", &root, "type", "veth", "peer", "name", "root", "netns", &hub,
        ]);
        ip(&["-n", &hub, "link", "set", "root", "master", "br0", "up"]);
        ip(&["addr", "add", &format!("{}/24", lan.addr(1)), "dev", &root]);
        ip(&["link", "set", &root, "up"]);
        lan
    }

    fn netns(&self, host: &str) -> String {
        format!("fmh{}-{host}", self.n)
    }

    /// The LAN address ending in `last`.
    pub fn addr(&self, last: u8) -> String {
        format!("10.213.{}.{last}", self.n)
    }

    /// The LAN's network, for Postgres' `pg_hba.conf`.
    pub fn subnet(&self) -> String {
        format!("10.213.{}.0/24", self.n)
    }

    /// Makes a host `name` at address `last` on the LAN.
    pub fn host(&mut self, name: &str, last: u8) -> Host {
        let netns = self.netns(name);
        let hub = self.netns("hub");
        ip(&["netns", "add", &netns]);
        self.hosts.push(netns.clone());
        ip(&["-n", &netns, "link", "set", "lo", "up"]);
        ip(&[
            "link", "add", "eth0", "netns", &netns, "type", "veth", "peer", "name", name, "netns",
            &hub,
        ]);
        ip(&["-n", &hub, "link", "set", name, "master", "br0", "up"]);
        let ip_addr = self.addr(last);
        ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{ip_addr}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &netns, "link", "set", "eth0", "up"]);
        Host {
            name: name.to_owned(),
            ip: ip_addr,
            netns,
        }
    }

    /// Takes `host` off the LAN, as a host that died would be: its link goes down.
    pub fn unplug(&self, host: &Host) {
        ip(&["-n", &host.netns, "link", "set", "eth0", "down"]);
    }

    /// Starts `command` (program, arguments, environment) on `host` as process `name` (its
    /// output in `<dir>/<name>.log`); `gentle` processes get SIGTERM before SIGKILL at the end.
    pub fn spawn(&mut self, host: &Host, name: &str, command: Command, gentle: bool) {
        let log = File::create(self.dir.join(format!("{name}.log"))).expect("log file");
        let program = command.get_program().to_owned();
        let mut ns = Command::new("nsenter");
        ns.arg(format!("--net=/run/netns/{}", host.netns));
        ns.arg("--").arg(program).args(command.get_args());
        for (k, v) in command.get_envs() {
            match v {
                Some(v) => ns.env(k, v),
                None => ns.env_remove(k),
            };
        }
        let child = ns
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        self.procs.push(Proc {
            name: name.to_owned(),
            child,
            gentle,
        });
    }

    /// Kills process `name` with SIGKILL and waits for it: a crash, no shutdown of any kind.
    pub fn kill9(&mut self, name: &str) {
        let p = self
            .procs
            .iter_mut()
            .find(|p| p.name == name)
            .expect("a process of that name");
        let _ = p.child.kill();
        let _ = p.child.wait();
    }

    /// What `name` logged so far (for failure messages).
    pub fn log_of(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }
}

/// Removes the namespaces and the root link a killed run left under N.
fn remove_leftovers(n: u16) {
    let out = Command::new("ip").args(["netns", "list"]).output();
    let list = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let prefix = format!("fmh{n}-");
    for ns in list
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').next())
    {
        if ns.starts_with(&prefix) {
            kill_in(ns);
            ip_quiet(&["netns", "del", ns]);
        }
    }
    ip_quiet(&["link", "del", &format!("fmh{n}")]);
}

/// Kills every process left in namespace `ns`.
fn kill_in(ns: &str) {
    let out = Command::new("ip").args(["netns", "pids", ns]).output();
    for pid in out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
        .split_whitespace()
    {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for p in self.procs.iter().filter(|p| p.gentle) {
            let _ = Command::new("kill")
                .args(["-TERM", &p.child.id().to_string()])
                .status();
        }
        for p in &mut self.procs {
            let deadline = Instant::now() + Duration::from_secs(if p.gentle { 30 } else { 0 });
            while Instant::now() < deadline && matches!(p.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        // Task disks a runner left mounted under the LAN's directory.
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let dir = self.dir.display().to_string();
        for point in info.lines().filter_map(|l| l.split(' ').nth(4)) {
            if point.starts_with(&dir) {
                let _ = Command::new("umount").args(["-l", point]).output();
            }
        }
        for ns in self.hosts.iter().chain([&self.netns("hub")]) {
            kill_in(ns);
            ip_quiet(&["netns", "del", ns]);
        }
        ip_quiet(&["link", "del", &format!("fmh{}", self.n)]);
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Debian's Postgres server programs (`/usr/lib/postgresql/VERSION/bin`), the newest there.
fn pg_bin() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").expect("Postgres is installed");
    let mut bins: Vec<PathBuf> = versions
        .filter_map(|v| Some(v.ok()?.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    bins.sort_by_key(|b| {
        b.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
    });
    bins.pop().expect("initdb under /usr/lib/postgresql")
}

pub const PG_PASSWORD: &str = "many-hosts-secret";

/// Starts a dedicated Postgres on `host` (initdb as the `postgres` user, listening on the
/// host's LAN address only, password auth from the LAN); answers its `postgres://` URL once
/// it accepts connections.
pub async fn start_postgres(lan: &mut Lan, host: &Host) -> String {
    let (uid, gid) = (id("-u"), id("-g"));
    let data = lan.dir.join("pg");
    std::fs::create_dir(&data).expect("pg dir");
    let pwfile = lan.dir.join("pg-password");
    std::fs::write(&pwfile, PG_PASSWORD).expect("password file");
    for p in [&data, &pwfile] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown to postgres");
    }
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("pg dir mode");
    let bin = pg_bin();
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ])
        .arg(format!("--pwfile={}", pwfile.display()))
        .output()
        .expect("initdb runs");
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hba = data.join("pg_hba.conf");
    let mut rules = std::fs::read_to_string(&hba).expect("pg_hba.conf");
    rules.push_str(&format!("host all all {} scram-sha-256\n", lan.subnet()));
    std::fs::write(&hba, rules).expect("pg_hba.conf");
    let mut postgres = Command::new(bin.join("postgres"));
    postgres.arg("-D").arg(&data);
    for setting in [
        format!("listen_addresses={}", host.ip),
        "port=5432".to_owned(),
        format!("unix_socket_directories={}", data.display()),
        "max_connections=200".to_owned(),
        // A test database: durability across a power cut is not what is being tested.
        "fsync=off".to_owned(),
        "synchronous_commit=off".to_owned(),
    ] {
        postgres.args(["-c", &setting]);
    }
    let mut ns = Command::new("setpriv");
    ns.args([
        &format!("--reuid={uid}"),
        &format!("--regid={gid}"),
        "--clear-groups",
    ])
    .arg(postgres.get_program())
    .args(postgres.get_args());
    lan.spawn(host, "postgres", ns, false);
    wait_port(lan, "postgres", &host.ip, 5432).await;
    format!(
        "postgres://postgres:{PG_PASSWORD}@{}:5432/postgres",
        host.ip
    )
}

fn id(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .expect("id runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the postgres user exists")
}

/// The S3 keys of [`start_s3`].
pub const S3_KEY: &str = "many-hosts-key";
pub const S3_SECRET: &str = "many-hosts-secret-key";

/// Starts s3s-fs (`scripts/s3-server`) on `host` with the bucket `ferrum`; answers the
/// `--blob-url` of `ferrum serve`.
pub async fn start_s3(lan: &mut Lan, host: &Host) -> String {
    let store = lan.dir.join("s3");
    std::fs::create_dir_all(store.join("ferrum")).expect("bucket dir");
    let mut s3 = Command::new(s3s_fs());
    s3.args(["--host", &host.ip, "--port", "9000"])
        .args(["--access-key", S3_KEY, "--secret-key", S3_SECRET])
        .arg(&store);
    lan.spawn(host, "s3", s3, false);
    wait_port(lan, "s3", &host.ip, 9000).await;
    format!(
        "s3://ferrum?endpoint=http://{}:9000&region=us-east-1",
        host.ip
    )
}

/// The s3s-fs binary, found as `scripts/s3-server` finds it.
fn s3s_fs() -> PathBuf {
    let out = Command::new("scripts/s3-server")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .arg("path")
        .output()
        .expect("scripts/s3-server runs");
    assert!(
        out.status.success(),
        "s3s-fs is missing: run scripts/s3-server"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Waits until `ip:port` accepts a connection from the root namespace.
pub async fn wait_port(lan: &Lan, name: &str, ip: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect((ip, port)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "{name} did not listen on {ip}:{port}: {}",
            lan.log_of(name)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Docker engine's network namespace for `ferrum runner --engine-netns`: the
/// engine runs in the test's own (the root) namespace.
pub fn engine_netns() -> String {
    format!("/proc/{}/ns/net", std::process::id())
}
