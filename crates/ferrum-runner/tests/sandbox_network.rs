//! The task sandbox's network, as an attacker inside a task would try it, against the real
//! engine and the host's real filter: no host port (on any host address), no other task, no
//! IPv6; outbound to a test-made "outside" network namespace works, and the API door reaches
//! a service bound to the host's loopback. Traffic goes only to this machine's own
//! addresses, a namespace the test makes itself, and Ferrum's own container network. Each
//! test runs on the cold and the pooled executor.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};

use common::*;
use ferrum_model::protocol::LogStream;
use ferrum_runner::executor::{NetworkMode, Outcome, TaskEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Connects from inside a task with busybox `nc`; prints `open ADDR` or `closed ADDR`.
fn probe(addr: &str, port: u16) -> String {
    format!(
        "if echo ping | nc -w 3 {addr} {port} >/dev/null 2>&1; then echo 'open {addr}'; \
         else echo 'closed {addr}'; fi\n"
    )
}

/// The host's IPv4 addresses (every interface, loopback included).
fn host_addresses() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|cidr| cidr.split('/').next())
        .map(str::to_owned)
        .collect()
}

/// A listener answering every connection with `answer`, on its own thread.
fn serve(listener: TcpListener, answer: &'static str) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.write_all(answer.as_bytes());
        }
    });
}

async fn isolated_task_reaches_no_host_port_but_the_api_door(kind: Kind) {
    // A host service on every address, as an attacker's target.
    let wide = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let wide_port = wide.local_addr().unwrap().port();
    serve(wide, "host service\n");
    // The "API", bound to loopback as in `ferrum dev`; the door forwards to it.
    let api = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let api_port = api.local_addr().unwrap().port();
    serve(api, "HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\nferrum\n");
    let (exec, door) = executor_with_door(
        kind,
        "net-host",
        |c| c.network = NetworkMode::Isolated,
        &format!("http://127.0.0.1:{api_port}"),
    )
    .await;
    let door = door.expect("isolated mode has a door");
    assert_eq!(door.protocol, "http");

    let mut targets = host_addresses();
    targets.push(door.host.clone());
    let mut script = String::from("echo \"door=$IRON_PROTOCOL://$IRON_HOST:$IRON_PORT\"\n");
    for addr in &targets {
        script.push_str(&probe(addr, wide_port));
    }
    script.push_str("echo \"api=$(wget -qO- http://$IRON_HOST:$IRON_PORT/)\"\n");
    // The door's address on any other port is closed too (e.g. the wide listener above).
    script.push_str("echo \"ipv6=$(cat /proc/sys/net/ipv6/conf/all/disable_ipv6)\"\n");
    let got = run(&exec, sh_task(&exec, &script), CancellationToken::new()).await;
    let out = got.stdout();
    assert_eq!(got.report().outcome, Outcome::Complete, "{out}");
    assert!(
        out.contains(&format!("door=http://{}:{}\n", door.host, door.port)),
        "{out}"
    );
    for addr in &targets {
        assert!(out.contains(&format!("closed {addr}\n")), "{addr}: {out}");
    }
    assert!(out.contains("api=ferrum\n"), "{out}");
    assert!(out.contains("ipv6=1\n"), "{out}");
}

/// Starts a task that listens on port 7000 and prints its address; returns the address and
/// the token that stops it.
async fn listening_task(
    exec: &TestExec,
) -> (String, CancellationToken, tokio::task::JoinHandle<()>) {
    let script = "echo \"ip=$(hostname -i)\"; while true; do echo pong | nc -l -p 7000; done";
    let task = sh_task(exec, script);
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let exec2 = exec.clone();
    let stop = cancel.clone();
    let handle = tokio::spawn(async move {
        let report = exec2.run(task, tx, stop).await.unwrap();
        assert_eq!(report.outcome, Outcome::Cancelled);
    });
    let mut seen = String::new();
    while let Some(event) = rx.recv().await {
        if let TaskEvent::Output {
            stream: LogStream::Stdout,
            data,
        } = event
        {
            seen.push_str(&String::from_utf8_lossy(&data));
            if let Some(ip) = seen.lines().find_map(|l| l.strip_prefix("ip=")) {
                let ip = ip.trim().to_owned();
                // Keep draining so the task never blocks on its output.
                tokio::spawn(async move { while rx.recv().await.is_some() {} });
                return (ip, cancel, handle);
            }
        }
    }
    panic!("the listening task ended early: {seen}");
}

async fn neighbour_reachable(kind: Kind, network: NetworkMode) -> String {
    let exec = executor(kind, "net-peer", |c| c.network = network).await;
    let (ip, stop, listener) = listening_task(&exec).await;
    // The listener prints its address before `nc -l` binds: retry for a while.
    let script = format!(
        "for i in 1 2 3 4 5; do if nc -w 2 {ip} 7000 </dev/null | grep -q pong; \
         then echo reached; exit 0; fi; sleep 1; done; echo unreachable"
    );
    let got = run(&exec, sh_task(&exec, &script), CancellationToken::new()).await;
    stop.cancel();
    listener.await.unwrap();
    got.stdout()
}

async fn tasks_cannot_reach_each_other(kind: Kind) {
    assert_eq!(
        neighbour_reachable(kind, NetworkMode::Isolated).await,
        "unreachable\n"
    );
}

/// The control for the test above: on Docker's default bridge the same probe gets through,
/// so "unreachable" is the sandbox's doing, not the probe's.
async fn control_on_the_default_bridge_tasks_do_reach_each_other(kind: Kind) {
    let bridge = NetworkMode::Named("bridge".to_owned());
    assert_eq!(neighbour_reachable(kind, bridge).await, "reached\n");
}

/// A network namespace joined to the host by a veth pair: "the outside world" for a task.
struct Outside {
    name: String,
    host_ip: String,
    ns_ip: String,
}

impl Outside {
    fn create(octet: u8) -> Outside {
        // Interface names hold 15 bytes: "ferrum7-12345a".
        let name = format!("ferrum{octet}-{}", std::process::id() % 100_000);
        let (veth, peer) = (format!("{name}a"), format!("{name}b"));
        let host_ip = format!("10.251.{octet}.1");
        let ns_ip = format!("10.251.{octet}.2");
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let _ = Command::new("ip").args(["link", "del", &veth]).status();
        let cmds: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), name.clone()],
            ["link", "add", &veth, "type", "veth", "peer", "name", &peer]
                .map(String::from)
                .into(),
            ["link", "set", &peer, "netns", &name]
                .map(String::from)
                .into(),
            ["addr", "add", &format!("{host_ip}/30"), "dev", &veth]
                .map(String::from)
                .into(),
            ["link", "set", &veth, "up"].map(String::from).into(),
        ];
        for args in cmds {
            let ok = Command::new("ip").args(&args).status().unwrap().success();
            assert!(ok, "ip {args:?}");
        }
        for args in [
            vec!["addr", "add", &format!("{ns_ip}/30"), "dev", &peer],
            vec!["link", "set", &peer, "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            let ok = Command::new("ip")
                .args(["netns", "exec", &name, "ip"])
                .args(&args)
                .status()
                .unwrap()
                .success();
            assert!(ok, "ip netns exec ip {args:?}");
        }
        Outside {
            name,
            host_ip,
            ns_ip,
        }
    }

    /// A listener inside the namespace answering `outside` (Python, run with `ip netns
    /// exec`); returns once it is bound.
    fn listen(&self, port: u16) -> Child {
        let server = format!(
            "import socket\n\
             s = socket.socket()\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('0.0.0.0', {port}))\n\
             s.listen(8)\n\
             print('ready', flush=True)\n\
             while True:\n    c, _ = s.accept()\n    c.sendall(b'outside\\n')\n    c.close()\n"
        );
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "/usr/bin/python3",
                "-c",
                &server,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
        child
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &format!("{}a", self.name)])
            .status();
    }
}

async fn outbound_traffic_still_works(kind: Kind) {
    let exec = executor(kind, "net-out", |c| c.network = NetworkMode::Isolated).await;
    // One namespace per kind: the cold and pooled runs of this test may overlap.
    let outside = Outside::create(match kind {
        Kind::Cold => 7,
        Kind::Pooled => 8,
    });
    let mut server = outside.listen(9000);
    // The host end of the veth is a host address: a host listener there stays closed.
    let host = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let host_port = host.local_addr().unwrap().port();
    serve(host, "host\n");
    let script = format!(
        "echo \"out=$(echo hi | nc -w 3 {} 9000)\"\n{}",
        outside.ns_ip,
        probe(&outside.host_ip, host_port)
    );
    let got = run(&exec, sh_task(&exec, &script), CancellationToken::new()).await;
    let _ = server.kill();
    let _ = server.wait();
    let out = got.stdout();
    assert!(out.contains("out=outside\n"), "{out}");
    assert!(
        out.contains(&format!("closed {}\n", outside.host_ip)),
        "{out}"
    );
}

async fn none_mode_has_no_network_and_no_door(kind: Kind) {
    let (exec, door) = executor_with_door(
        kind,
        "net-none",
        |c| c.network = NetworkMode::None,
        "http://127.0.0.1:1",
    )
    .await;
    assert_eq!(door, None);
    let script = "echo \"iron=${IRON_HOST-unset}\"; ls /sys/class/net | tr '\\n' ' '";
    let got = run(&exec, sh_task(&exec, script), CancellationToken::new()).await;
    assert_eq!(got.stdout(), "iron=unset\nlo ");
}

/// The control for the host test: on Docker's default bridge a task does reach a host port
/// through its gateway, which is what `isolated` closes.
async fn control_on_the_default_bridge_a_host_port_is_open(kind: Kind) {
    let exec = executor(kind, "net-ctl", |c| {
        c.network = NetworkMode::Named("bridge".into())
    })
    .await;
    let wide = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let port = wide.local_addr().unwrap().port();
    serve(wide, "host service\n");
    let script = format!(
        "gw=$(ip route 2>/dev/null | awk '/default/ {{print $3}}'); \
         [ -n \"$gw\" ] || gw=$(route -n | awk '$1 == \"0.0.0.0\" {{print $2}}'); {}",
        probe("$gw", port)
    );
    let got = run(&exec, sh_task(&exec, &script), CancellationToken::new()).await;
    assert!(got.stdout().starts_with("open "), "{}", got.stdout());
}

suite!(
    isolated_task_reaches_no_host_port_but_the_api_door,
    tasks_cannot_reach_each_other,
    control_on_the_default_bridge_tasks_do_reach_each_other,
    outbound_traffic_still_works,
    none_mode_has_no_network_and_no_door,
    control_on_the_default_bridge_a_host_port_is_open,
);
