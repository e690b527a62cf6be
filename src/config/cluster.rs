//! Cluster membership settings: `process.roles`, `node.id`, `controller.quorum.voters`, the named
//! `listeners`, checked together.
//!
//! Kafka's KRaft names and forms are kept so that a `server.properties` of a combined-mode node
//! carries over: `"process.roles" = "broker,controller"`, `"controller.quorum.voters" =
//! "1@127.0.0.1:19093,2@…"`, `"listeners" = "PLAINTEXT://127.0.0.1:19092,CONTROLLER://…"`,
//! `"controller.listener.names" = "CONTROLLER"`. Without `process.roles` the broker is the single
//! node it always was and none of this applies (a `listeners` value is still parsed the same way,
//! so `PLAINTEXT://host:port` keeps working).
//!
//! Only PLAINTEXT client listeners exist (no TLS or SASL yet), so a listener of another name is
//! refused rather than silently served as plaintext. The controller listener carries the Raft
//! traffic of [`crate::cluster::quorum`], not the Kafka protocol.
//!
//! What is checked here is everything that can be decided from one node's file: roles known, a
//! cluster node has voters, a controller is one of them with a controller listener at its voter
//! address, a broker has a client listener. That the voters lists of the nodes agree cannot be
//! checked from one file; the cluster id derived from it ([`ClusterSettings::derived_cluster_id`])
//! differs when they do not, which the nodes' logs show.

use std::net::SocketAddr;

use super::{BrokerSettings, ConfigError};

/// The listener name of client connections.
pub const PLAINTEXT: &str = "PLAINTEXT";
/// `controller.listener.names` when it is not set (Kafka has no default; every example uses it).
pub const DEFAULT_CONTROLLER_LISTENER: &str = "CONTROLLER";

/// One entry of `listeners`: `NAME://host:port` (a bare `host:port` is PLAINTEXT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub addr: SocketAddr,
}

/// This node's part in a cluster, from the settings (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    pub node_id: i32,
    /// `process.roles` contains `broker`.
    pub is_broker: bool,
    /// `process.roles` contains `controller`.
    pub is_controller: bool,
    /// `controller.quorum.voters`, in the order given.
    pub voters: Vec<(i32, SocketAddr)>,
    /// The controller listener this node binds (controllers only).
    pub controller_listen: Option<SocketAddr>,
    /// The client listener from `listeners` (brokers), unless the `--listen` flag replaces it.
    pub client_listen: Option<SocketAddr>,
}

impl ClusterSettings {
    /// A cluster id every node computes alike from the voters (sorted, so their order in the
    /// file does not matter), in Kafka's 22-character base64url form of 16 bytes. Kafka has the
    /// operator format every node's storage with one id; deriving it means there is no extra step
    /// and no file that can go missing, and nodes given different voter lists (which would never
    /// form one quorum) report different ids.
    pub fn derived_cluster_id(&self) -> String {
        let mut voters = self.voters.clone();
        voters.sort();
        let text: Vec<String> = voters.iter().map(|(id, a)| format!("{id}@{a}")).collect();
        let text = text.join(",");
        let h1 = twox_hash::XxHash32::oneshot(0x5249_4e47, text.as_bytes());
        let h2 = twox_hash::XxHash32::oneshot(0x424f_4c54, text.as_bytes());
        let h3 = twox_hash::XxHash32::oneshot(h1, text.as_bytes());
        let h4 = twox_hash::XxHash32::oneshot(h2, text.as_bytes());
        let mut bytes = [0u8; 16];
        for (i, h) in [h1, h2, h3, h4].into_iter().enumerate() {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&h.to_be_bytes());
        }
        base64url(&bytes)
    }
}

/// Unpadded base64url, as Kafka's `Uuid.toString`.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Cluster(msg.into())
}

fn resolve(what: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| invalid(format!("{what}: `{s}` is not a host:port address")))
}

/// Parses `listeners`: comma-separated `NAME://host:port` (or a bare `host:port`, PLAINTEXT).
/// Names other than PLAINTEXT and `controller_name` are refused, as are repeated names.
pub fn parse_listeners(s: &str, controller_name: &str) -> Result<Vec<Listener>, ConfigError> {
    let mut out: Vec<Listener> = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, addr) = match entry.split_once("://") {
            Some((n, a)) => (n.trim().to_ascii_uppercase(), a.trim()),
            None => (PLAINTEXT.to_string(), entry),
        };
        if name != PLAINTEXT && name != controller_name {
            return Err(invalid(format!(
                "listeners: `{entry}`: listener {name} is not supported; Ringbolt serves \
                 PLAINTEXT clients and the controller listener `{controller_name}` only"
            )));
        }
        if out.iter().any(|l| l.name == name) {
            return Err(invalid(format!("listeners: {name} is listed twice")));
        }
        out.push(Listener {
            addr: resolve(&format!("listeners: {name}"), addr)?,
            name,
        });
    }
    if out.is_empty() {
        return Err(invalid(format!("listeners: `{s}` names no listener")));
    }
    Ok(out)
}

/// Parses `controller.quorum.voters`: comma-separated `id@host:port`, ids unique.
pub fn parse_voters(s: &str) -> Result<Vec<(i32, SocketAddr)>, ConfigError> {
    let mut out: Vec<(i32, SocketAddr)> = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = entry.split_once('@').ok_or_else(|| {
            invalid(format!(
                "controller.quorum.voters: `{entry}` is not of the form id@host:port"
            ))
        })?;
        let id: i32 = id.trim().parse().ok().filter(|i| *i >= 0).ok_or_else(|| {
            invalid(format!(
                "controller.quorum.voters: `{entry}`: `{id}` is not a node id"
            ))
        })?;
        if out.iter().any(|(i, _)| *i == id) {
            return Err(invalid(format!(
                "controller.quorum.voters: node {id} is listed twice"
            )));
        }
        out.push((
            id,
            resolve(&format!("controller.quorum.voters: node {id}"), addr.trim())?,
        ));
    }
    if out.is_empty() {
        return Err(invalid("controller.quorum.voters is empty"));
    }
    Ok(out)
}

impl BrokerSettings {
    /// The controller listener's name (`controller.listener.names`, its first entry; Ringbolt
    /// has one controller listener).
    pub fn controller_listener_name(&self) -> String {
        self.controller_listener_names
            .as_deref()
            .and_then(|s| s.split(',').map(str::trim).find(|n| !n.is_empty()))
            .unwrap_or(DEFAULT_CONTROLLER_LISTENER)
            .to_ascii_uppercase()
    }

    /// The parsed `listeners`, if set.
    pub fn parsed_listeners(&self) -> Result<Option<Vec<Listener>>, ConfigError> {
        self.listeners
            .as_deref()
            .map(|s| parse_listeners(s, &self.controller_listener_name()))
            .transpose()
    }

    /// The client (PLAINTEXT) listener of `listeners`, if one is set.
    pub fn client_listener(&self) -> Result<Option<SocketAddr>, ConfigError> {
        Ok(self
            .parsed_listeners()?
            .and_then(|ls| ls.into_iter().find(|l| l.name == PLAINTEXT).map(|l| l.addr)))
    }

    /// This node's cluster settings: `None` without `process.roles` (a single node), else the
    /// checked roles, voters and listeners.
    pub fn cluster(&self) -> Result<Option<ClusterSettings>, ConfigError> {
        let listeners = self.parsed_listeners()?;
        let Some(roles) = self.process_roles.as_deref() else {
            return Ok(None);
        };
        let (mut is_broker, mut is_controller) = (false, false);
        for role in roles.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            match role {
                "broker" => is_broker = true,
                "controller" => is_controller = true,
                other => {
                    return Err(invalid(format!(
                        "process.roles: unknown role `{other}` (broker, controller or both)"
                    )));
                }
            }
        }
        if !is_broker && !is_controller {
            return Err(invalid(
                "process.roles is empty: give broker, controller or both",
            ));
        }
        let voters = match self.controller_quorum_voters.as_deref() {
            Some(v) => parse_voters(v)?,
            None => {
                return Err(invalid(
                    "process.roles is set, so controller.quorum.voters is required \
                     (id@host:port of every controller, comma-separated)",
                ));
            }
        };
        let node_id = self.node_id;
        let listeners = listeners.unwrap_or_default();
        let cname = self.controller_listener_name();
        let controller_listen = listeners.iter().find(|l| l.name == cname).map(|l| l.addr);
        let client_listen = listeners
            .iter()
            .find(|l| l.name == PLAINTEXT)
            .map(|l| l.addr);
        if is_controller {
            let Some(&(_, voter_addr)) = voters.iter().find(|(id, _)| *id == node_id) else {
                return Err(invalid(format!(
                    "node.id {node_id} is a controller but is not among \
                     controller.quorum.voters"
                )));
            };
            let Some(listen) = controller_listen else {
                return Err(invalid(format!(
                    "node {node_id} is a controller but listeners has no {cname}:// listener"
                )));
            };
            if listen.port() != voter_addr.port()
                || !(listen.ip() == voter_addr.ip() || listen.ip().is_unspecified())
            {
                return Err(invalid(format!(
                    "the {cname} listener {listen} of node {node_id} does not match its \
                     controller.quorum.voters entry {voter_addr}"
                )));
            }
        } else if controller_listen.is_some() {
            return Err(invalid(format!(
                "node {node_id} is not a controller but listeners has a {cname}:// listener"
            )));
        }
        if is_broker && client_listen.is_none() {
            return Err(invalid(format!(
                "node {node_id} is a broker but listeners has no PLAINTEXT:// client listener"
            )));
        }
        Ok(Some(ClusterSettings {
            node_id,
            is_broker,
            is_controller,
            voters,
            controller_listen: if is_controller {
                controller_listen
            } else {
                None
            },
            client_listen,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOTERS: &str = "1@127.0.0.1:19793,2@127.0.0.1:19794,3@127.0.0.1:19795";

    fn node(id: i32, extra: &str) -> Result<BrokerSettings, ConfigError> {
        BrokerSettings::from_toml_str(&format!(
            "\"process.roles\" = \"broker,controller\"\n\"node.id\" = {id}\n\
             \"controller.quorum.voters\" = \"{VOTERS}\"\n{extra}"
        ))
    }

    fn listeners(client: u16, controller: u16) -> String {
        format!(
            "\"listeners\" = \"PLAINTEXT://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller}\"\n"
        )
    }

    fn err(r: Result<BrokerSettings, ConfigError>) -> String {
        match r {
            Ok(s) => panic!("accepted: {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn single_node_has_no_cluster_settings() {
        let s = BrokerSettings::default();
        assert_eq!(s.cluster().unwrap(), None);
        let s = BrokerSettings::from_toml_str("\"listeners\" = \"PLAINTEXT://127.0.0.1:9092\"\n")
            .unwrap();
        assert_eq!(s.cluster().unwrap(), None);
        assert_eq!(
            s.client_listener().unwrap(),
            Some("127.0.0.1:9092".parse().unwrap())
        );
        assert_eq!(s.broker_heartbeat_interval_ms, 250);
        assert_eq!(s.broker_session_timeout_ms, 1500);
        assert_eq!(s.controller_quorum_election_timeout_ms, 500);
        assert_eq!(s.replica_lag_time_max_ms, 30_000);
        assert_eq!(s.replica_fetch_wait_max_ms, 500);
        assert_eq!(s.replica_fetch_max_bytes, 1_048_576);
        assert_eq!(s.default_replication_factor, 1);
        assert_eq!(s.min_insync_replicas, 1);
        assert!(!s.unclean_leader_election_enable);
    }

    #[test]
    fn combined_node_parses() {
        let s = node(2, &listeners(19701, 19794)).unwrap();
        let c = s.cluster().unwrap().unwrap();
        assert!(c.is_broker && c.is_controller);
        assert_eq!(c.node_id, 2);
        assert_eq!(c.voters.len(), 3);
        assert_eq!(c.voters[1], (2, "127.0.0.1:19794".parse().unwrap()));
        assert_eq!(
            c.controller_listen,
            Some("127.0.0.1:19794".parse().unwrap())
        );
        assert_eq!(c.client_listen, Some("127.0.0.1:19701".parse().unwrap()));
        assert_eq!(
            s.client_listener().unwrap(),
            Some("127.0.0.1:19701".parse().unwrap())
        );
    }

    #[test]
    fn cluster_id_is_the_same_on_every_node_and_voter_order_free() {
        let a = node(1, &listeners(19700, 19793)).unwrap();
        let a = a.cluster().unwrap().unwrap();
        let b = node(3, &listeners(19702, 19795)).unwrap();
        let b = b.cluster().unwrap().unwrap();
        assert_eq!(a.derived_cluster_id(), b.derived_cluster_id());
        assert_eq!(a.derived_cluster_id().len(), 22);
        let mut c = a.clone();
        c.voters.reverse();
        assert_eq!(a.derived_cluster_id(), c.derived_cluster_id());
        c.voters.pop();
        assert_ne!(a.derived_cluster_id(), c.derived_cluster_id());
    }

    #[test]
    fn roles_need_voters() {
        let e = err(BrokerSettings::from_toml_str(
            "\"process.roles\" = \"broker,controller\"\n\
             \"listeners\" = \"PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2\"\n",
        ));
        assert!(e.contains("controller.quorum.voters is required"), "{e}");
        let e = err(BrokerSettings::from_toml_str(&format!(
            "\"process.roles\" = \"broker,zookeeper\"\n\"controller.quorum.voters\" = \"{VOTERS}\"\n"
        )));
        assert!(e.contains("unknown role `zookeeper`"), "{e}");
    }

    #[test]
    fn controller_must_be_a_voter_with_its_listener() {
        let e = err(node(4, &listeners(19701, 19794)));
        assert!(
            e.contains("node.id 4 is a controller but is not among"),
            "{e}"
        );
        let e = err(node(1, "\"listeners\" = \"PLAINTEXT://127.0.0.1:19700\"\n"));
        assert!(e.contains("has no CONTROLLER:// listener"), "{e}");
        let e = err(node(1, &listeners(19700, 19799)));
        assert!(
            e.contains("does not match its controller.quorum.voters entry"),
            "{e}"
        );
        // Binding all interfaces on the voter's port is fine.
        node(
            1,
            "\"listeners\" = \"PLAINTEXT://0.0.0.0:19700,CONTROLLER://0.0.0.0:19793\"\n",
        )
        .unwrap();
    }

    #[test]
    fn broker_needs_a_client_listener_and_broker_only_no_controller_listener() {
        let e = err(node(
            1,
            "\"listeners\" = \"CONTROLLER://127.0.0.1:19793\"\n",
        ));
        assert!(e.contains("no PLAINTEXT:// client listener"), "{e}");
        let e = err(BrokerSettings::from_toml_str(&format!(
            "\"process.roles\" = \"broker\"\n\"node.id\" = 7\n\
             \"controller.quorum.voters\" = \"{VOTERS}\"\n{}",
            listeners(19703, 19796)
        )));
        assert!(
            e.contains("is not a controller but listeners has a CONTROLLER"),
            "{e}"
        );
        let s = BrokerSettings::from_toml_str(&format!(
            "\"process.roles\" = \"broker\"\n\"node.id\" = 7\n\
             \"controller.quorum.voters\" = \"{VOTERS}\"\n\
             \"listeners\" = \"PLAINTEXT://127.0.0.1:19703\"\n"
        ))
        .unwrap();
        let c = s.cluster().unwrap().unwrap();
        assert!(c.is_broker && !c.is_controller && c.controller_listen.is_none());
    }

    #[test]
    fn listener_and_voter_forms() {
        let e = err(BrokerSettings::from_toml_str(
            "\"listeners\" = \"SSL://127.0.0.1:9093\"\n",
        ));
        assert!(e.contains("listener SSL is not supported"), "{e}");
        let e = err(BrokerSettings::from_toml_str(
            "\"listeners\" = \"PLAINTEXT://127.0.0.1:1,PLAINTEXT://127.0.0.1:2\"\n",
        ));
        assert!(e.contains("listed twice"), "{e}");
        let s = BrokerSettings::from_toml_str(
            "\"listeners\" = \"RAFT://127.0.0.1:1,PLAINTEXT://127.0.0.1:2\"\n\
             \"controller.listener.names\" = \"RAFT\"\n",
        )
        .unwrap();
        assert_eq!(s.controller_listener_name(), "RAFT");
        assert!(parse_voters("1@127.0.0.1:1,1@127.0.0.1:2").is_err());
        assert!(parse_voters("x@127.0.0.1:1").is_err());
        assert!(parse_voters("1=127.0.0.1:1").is_err());
        assert!(parse_voters("").is_err());
        assert_eq!(
            parse_voters(" 1@127.0.0.1:1 , 2@127.0.0.1:2").unwrap(),
            vec![
                (1, "127.0.0.1:1".parse().unwrap()),
                (2, "127.0.0.1:2".parse().unwrap())
            ]
        );
    }

    #[test]
    fn timings_are_validated() {
        for bad in [
            "\"broker.heartbeat.interval.ms\" = 0\n",
            "\"broker.session.timeout.ms\" = 100\n\"broker.heartbeat.interval.ms\" = 250\n",
            "\"controller.quorum.election.timeout.ms\" = 0\n",
            "\"replica.fetch.max.bytes\" = 0\n",
            "\"default.replication.factor\" = 0\n",
        ] {
            assert!(BrokerSettings::from_toml_str(bad).is_err(), "{bad}");
        }
    }
}
