//! Where task containers sit on the network, and the one door back to the Ferrum API.
//!
//! A task is untrusted code. On Docker's default bridge it reaches every port the runner host
//! listens on and every other container on that bridge. In the default `isolated` mode tasks
//! instead join a Ferrum-managed bridge ([`ISOLATED_NETWORK`], interface [`ISOLATED_BRIDGE`])
//! where:
//! - inter-container traffic is off (`enable_icc=false`), so tasks cannot reach each other;
//! - outbound traffic is masqueraded as usual, so workers can still call outside APIs;
//! - the host's INPUT path from the bridge is filtered (chain [`INPUT_CHAIN`]): only
//!   replies and connections to sockets bound to the bridge's gateway address itself (the
//!   runners' API doors, see `door.rs`) are accepted. A service listening on `0.0.0.0`, on
//!   another host address or on loopback is refused, and so are the host's published
//!   container ports (DNAT'd traffic from the bridge is rejected in `DOCKER-USER`);
//! - IPv6 is off: the network has none, the container's stack is disabled by sysctl, and
//!   ip6tables drops anything from the bridge, so no link-local address leaks a way out.
//!
//! The rules are installed idempotently at runner start (every runner on the host installs
//! the same ones) and hold no per-runner state, so several runners share the bridge and a
//! crashed runner leaves nothing stale behind.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::str::FromStr;

use bollard::network::CreateNetworkOptions;
use bollard::Docker;

use super::{netns, ExecError};

/// The Docker network of `isolated` mode, shared by every runner on the host.
pub const ISOLATED_NETWORK: &str = "ferrum-isolated";
/// Its Linux bridge interface, named so the host filter can match it.
pub const ISOLATED_BRIDGE: &str = "ferrum0";
/// The iptables chain, jumped to from INPUT for traffic arriving from the bridge.
pub const INPUT_CHAIN: &str = "FERRUM-INPUT";

/// What to do when the filter cannot be installed.
const NEEDS_ROOT: &str = " (the isolated network mode installs iptables rules and needs root; \
                          otherwise choose --network none or a Docker network you manage)";

const ICC_OPTION: &str = "com.docker.network.bridge.enable_icc";
const BRIDGE_OPTION: &str = "com.docker.network.bridge.name";

/// How task containers are networked, chosen per runner (`ferrum runner --network`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// The Ferrum-managed bridge: outbound only, plus the API door (the default).
    #[default]
    Isolated,
    /// No network at all (only loopback inside the container), and no door.
    None,
    /// A Docker network the operator manages; the operator decides what it reaches, and the
    /// task gets the API URL as it is (the network must route to it).
    Named(String),
}

impl FromStr for NetworkMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "isolated" => Ok(NetworkMode::Isolated),
            "none" => Ok(NetworkMode::None),
            "" => Err("a network name must not be empty".to_owned()),
            // Joining the host's network namespace would undo the sandbox entirely.
            "host" => Err("`host` would give tasks the host's network; refused".to_owned()),
            // `bridge` is allowed deliberately: an operator may want Docker's default.
            name if name.starts_with('-') => Err(format!("bad network name {name:?}")),
            name => Ok(NetworkMode::Named(name.to_owned())),
        }
    }
}

impl NetworkMode {
    /// The Docker `NetworkMode` value for a container.
    pub(crate) fn docker_name(&self) -> &str {
        match self {
            NetworkMode::Isolated => ISOLATED_NETWORK,
            NetworkMode::None => "none",
            NetworkMode::Named(name) => name,
        }
    }
}

/// How a task reaches the Ferrum API: given to every task as `IRON_PROTOCOL`, `IRON_HOST`
/// and `IRON_PORT`, the variables the official clients read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiDoor {
    /// `http` or `https`: the API URL's scheme (the door forwards TCP unchanged).
    pub protocol: String,
    pub host: String,
    pub port: u16,
}

impl ApiDoor {
    /// The `IRON_*` variables, in the `KEY=VALUE` form of the container environment.
    pub fn env(&self) -> [String; 3] {
        [
            format!("IRON_HOST={}", self.host),
            format!("IRON_PORT={}", self.port),
            format!("IRON_PROTOCOL={}", self.protocol),
        ]
    }

    /// `env` laid over `vars` (they win over a code's own `env_vars` of the same name),
    /// keeping the list sorted by key as the contract's environment is.
    pub(crate) fn apply(&self, vars: &mut Vec<String>) {
        let ours = self.env();
        vars.retain(|v| !ours.iter().any(|o| same_key(o, v)));
        vars.extend(ours);
        vars.sort_by(|a, b| key(a).cmp(key(b)));
    }
}

fn key(var: &str) -> &str {
    var.split_once('=').map_or(var, |(k, _)| k)
}

fn same_key(a: &str, b: &str) -> bool {
    key(a) == key(b)
}

/// Creates the isolated network if missing (checking an existing one has inter-container
/// traffic off and the expected bridge name), installs the host filter (in the engine's
/// network namespace `engine_netns`, when the runner is not in it), and returns the bridge's
/// gateway address (where doors listen).
pub(crate) async fn ensure_isolated(
    docker: &Docker,
    engine_netns: Option<&Path>,
) -> Result<Ipv4Addr, ExecError> {
    let gateway = bridge_gateway(docker, ISOLATED_NETWORK, ISOLATED_BRIDGE).await?;
    let engine_netns = engine_netns.map(Path::to_owned);
    tokio::task::spawn_blocking(move || match engine_netns {
        Some(path) => netns::run_in(&path, move || install_filter(gateway)),
        None => install_filter(gateway),
    })
    .await
    .map_err(|e| ExecError::Io(std::io::Error::other(e)))??;
    Ok(gateway)
}

/// The gateway of the Docker network `name` on Linux bridge `bridge`, created if missing.
///
/// Runners starting together on one engine race to create it: Docker's name check is not
/// atomic, so the loser may get a bridge-name conflict (403) rather than a 409. Whoever won,
/// the network then exists; only its absence after the attempt is an error.
async fn bridge_gateway(docker: &Docker, name: &str, bridge: &str) -> Result<Ipv4Addr, ExecError> {
    if let Some(gateway) = inspect(docker, name, bridge).await? {
        return Ok(gateway);
    }
    let created = create(docker, name, bridge).await;
    match (inspect(docker, name, bridge).await?, created) {
        (Some(gateway), _) => Ok(gateway),
        (None, Err(e)) => Err(e),
        (None, Ok(())) => Err(sandbox_error(format!(
            "network {name} vanished after creation"
        ))),
    }
}

async fn create(docker: &Docker, name: &str, bridge: &str) -> Result<(), ExecError> {
    let options = CreateNetworkOptions {
        name,
        check_duplicate: true,
        driver: "bridge",
        enable_ipv6: false,
        options: HashMap::from([
            (BRIDGE_OPTION, bridge),
            (ICC_OPTION, "false"),
            ("com.docker.network.bridge.enable_ip_masquerade", "true"),
        ]),
        labels: HashMap::from([("ferrum.network", "isolated")]),
        ..Default::default()
    };
    docker.create_network(options).await?;
    Ok(())
}

/// The gateway of the existing network `name`, `None` when there is none.
async fn inspect(docker: &Docker, name: &str, bridge: &str) -> Result<Option<Ipv4Addr>, ExecError> {
    let network = match docker.inspect_network::<String>(name, None).await {
        Ok(n) => n,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let options = network.options.unwrap_or_default();
    let opt = |k: &str| options.get(k).map(String::as_str);
    if opt(ICC_OPTION) != Some("false") || opt(BRIDGE_OPTION) != Some(bridge) {
        return Err(sandbox_error(format!(
            "Docker network {name} exists with other settings (it needs \
             {ICC_OPTION}=false and bridge name {bridge}); remove it and restart"
        )));
    }
    let gateway = network
        .ipam
        .and_then(|i| i.config)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.gateway)
        .find_map(|g| g.parse::<Ipv4Addr>().ok());
    gateway
        .map(Some)
        .ok_or_else(|| sandbox_error(format!("network {name} has no IPv4 gateway")))
}

fn sandbox_error(msg: String) -> ExecError {
    ExecError::Sandbox(msg)
}

/// The rules of [`INPUT_CHAIN`], in order, as `iptables -S` prints them.
fn input_rules(gateway: Ipv4Addr) -> Vec<String> {
    vec![
        format!("-A {INPUT_CHAIN} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        // `-m socket` without `--nowildcard` ignores wildcard listeners: only a socket bound
        // to the gateway address itself (a runner's door) accepts.
        format!("-A {INPUT_CHAIN} -d {gateway}/32 -p tcp -m socket -j ACCEPT"),
        format!("-A {INPUT_CHAIN} -j REJECT --reject-with icmp-port-unreachable"),
    ]
}

/// Installs the host filter for the bridge. Idempotent: rules already in place are left
/// alone; the chain is rebuilt only when its contents differ (first start, new gateway).
fn install_filter(gateway: Ipv4Addr) -> Result<(), ExecError> {
    let want = input_rules(gateway);
    let have = iptables("iptables", &["-S", INPUT_CHAIN]);
    let have: Vec<String> = match have {
        Ok(out) => out
            .lines()
            .filter(|l| l.starts_with("-A "))
            .map(str::to_owned)
            .collect(),
        Err(_) => {
            iptables("iptables", &["-N", INPUT_CHAIN])?;
            Vec::new()
        }
    };
    if have != want {
        // Reject first while rebuilding, so the chain is never open in between.
        iptables(
            "iptables",
            &[
                "-I",
                INPUT_CHAIN,
                "1",
                "-j",
                "REJECT",
                "--reject-with",
                "icmp-port-unreachable",
            ],
        )?;
        let count = have.len() + 1;
        for _ in 1..count {
            iptables("iptables", &["-D", INPUT_CHAIN, "2"])?;
        }
        for rule in &want {
            let args: Vec<&str> = rule.split(' ').skip(2).collect();
            let mut full = vec!["-A", INPUT_CHAIN];
            full.extend(args);
            iptables("iptables", &full)?;
        }
        iptables("iptables", &["-D", INPUT_CHAIN, "1"])?;
    }
    ensure_rule(
        "iptables",
        "INPUT",
        &["-i", ISOLATED_BRIDGE, "-j", INPUT_CHAIN],
    )?;
    // Published ports of other containers are DNAT'd before INPUT: refuse those too.
    let dnat = [
        "-i",
        ISOLATED_BRIDGE,
        "-m",
        "conntrack",
        "--ctstate",
        "DNAT",
        "-j",
        "REJECT",
    ];
    if let Err(e) = ensure_rule("iptables", "DOCKER-USER", &dnat) {
        tracing::warn!(error = %e, "no DOCKER-USER chain: published ports are not filtered");
    }
    if std::path::Path::new("/proc/net/if_inet6").exists() {
        ensure_rule("ip6tables", "INPUT", &["-i", ISOLATED_BRIDGE, "-j", "DROP"])?;
        ensure_rule(
            "ip6tables",
            "FORWARD",
            &["-i", ISOLATED_BRIDGE, "-j", "DROP"],
        )?;
        let sysctl = format!("/proc/sys/net/ipv6/conf/{ISOLATED_BRIDGE}/disable_ipv6");
        if let Err(e) = std::fs::write(&sysctl, "1") {
            tracing::debug!(error = %e, "could not disable IPv6 on the bridge");
        }
    }
    Ok(())
}

/// Inserts `rule` at the top of `chain` unless it is there already.
fn ensure_rule(tool: &str, chain: &str, rule: &[&str]) -> Result<(), ExecError> {
    let mut check = vec!["-C", chain];
    check.extend(rule);
    if iptables(tool, &check).is_ok() {
        return Ok(());
    }
    let mut insert = vec!["-I", chain, "1"];
    insert.extend(rule);
    iptables(tool, &insert).map(|_| ())
}

/// Runs an iptables command (`-w`: wait for the xtables lock other runners may hold).
fn iptables(tool: &str, args: &[&str]) -> Result<String, ExecError> {
    let out = std::process::Command::new(tool)
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| sandbox_error(format!("running {tool}: {e}{NEEDS_ROOT}")))?;
    if !out.status.success() {
        return Err(sandbox_error(format!(
            "{tool} {}: {}{NEEDS_ROOT}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runners started together on a fresh engine all get the one network, none an error.
    #[tokio::test]
    async fn runners_racing_to_create_the_network_all_get_it() {
        let docker = Docker::connect_with_local_defaults().expect("a Docker engine");
        let pid = std::process::id();
        let (name, bridge) = (format!("ferrum-race-{pid}"), format!("frace{pid}"));
        let racers = (0..4).map(|_| bridge_gateway(&docker, &name, &bridge));
        let gateways = futures_util::future::join_all(racers).await;
        let _ = docker.remove_network(&name).await;
        let gateways: Vec<Ipv4Addr> = gateways.into_iter().map(Result::unwrap).collect();
        assert!(gateways.windows(2).all(|w| w[0] == w[1]), "{gateways:?}");
    }

    #[test]
    fn modes_parse() {
        assert_eq!("isolated".parse(), Ok(NetworkMode::Isolated));
        assert_eq!("none".parse(), Ok(NetworkMode::None));
        assert_eq!(
            "ops-net".parse(),
            Ok(NetworkMode::Named("ops-net".to_owned()))
        );
        assert!("host".parse::<NetworkMode>().is_err());
        assert!("".parse::<NetworkMode>().is_err());
    }

    #[test]
    fn door_variables_replace_a_codes_own_and_stay_sorted() {
        let door = ApiDoor {
            protocol: "http".into(),
            host: "172.18.0.1".into(),
            port: 4000,
        };
        let mut env = vec![
            "A=1".to_owned(),
            "IRON_HOST=evil".to_owned(),
            "TASK_ID=x".to_owned(),
        ];
        door.apply(&mut env);
        assert_eq!(
            env,
            [
                "A=1",
                "IRON_HOST=172.18.0.1",
                "IRON_PORT=4000",
                "IRON_PROTOCOL=http",
                "TASK_ID=x"
            ]
        );
    }
}
