//! Opening a Zenoh session from the bridge's few options: endpoints to connect to and to
//! listen on, peer or client mode, and whether to discover peers by multicast scouting.

use zenoh::Wait;

/// Connection retries: from 250 ms, doubling, at most every second.
const CONNECT_RETRY: &str = "{period_init_ms: 250, period_max_ms: 1000, period_increase_factor: 2}";

/// Batches in the data priority's transmission queue (Zenoh's maximum).
const DATA_QUEUE_BATCHES: usize = 16;

/// How a bridge joins Zenoh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOptions {
    /// Endpoints to connect to, e.g. `tcp/192.168.1.10:7447`.
    pub connect: Vec<String>,
    /// Endpoints to listen on, e.g. `tcp/0.0.0.0:7447`.
    pub listen: Vec<String>,
    /// Discover peers by UDP multicast scouting (Zenoh's default). Off for tests and for
    /// networks where only the given endpoints may be used.
    pub multicast: bool,
    /// Join as a client of a router instead of as a peer.
    pub client: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self { connect: Vec::new(), listen: Vec::new(), multicast: true, client: false }
    }
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// An option was refused by Zenoh's configuration.
    #[error("zenoh configuration {key} = {value}: {reason}")]
    Config {
        /// The configuration key.
        key: &'static str,
        /// The value given.
        value: String,
        /// Zenoh's reason.
        reason: String,
    },
    /// Zenoh could not open the session (an endpoint unreachable, a port taken, …).
    #[error("cannot open the zenoh session (connect {connect:?}, listen {listen:?}): {reason}")]
    Open {
        /// The endpoints to connect to.
        connect: Vec<String>,
        /// The endpoints to listen on.
        listen: Vec<String>,
        /// Zenoh's reason.
        reason: String,
    },
}

impl SessionOptions {
    /// The Zenoh configuration these options describe.
    pub fn config(&self) -> Result<zenoh::Config, SessionError> {
        let mut config = zenoh::Config::default();
        let mode = if self.client { "\"client\"" } else { "\"peer\"" };
        insert(&mut config, "mode", mode.to_owned())?;
        if !self.connect.is_empty() {
            insert(&mut config, "connect/endpoints", json_list(&self.connect))?;
            // Retry a lost or not yet listening peer every second at most (Zenoh backs off to
            // 4 s), so that a restarted bridge is found again within about a second.
            insert(&mut config, "connect/retry", CONNECT_RETRY.to_owned())?;
        }
        if !self.listen.is_empty() {
            insert(&mut config, "listen/endpoints", json_list(&self.listen))?;
        }
        // Room for a whole 1 MiB frame (16 batches of 64 KiB) in the data queue, so that a put
        // copies its fragments in at once instead of waiting for the sending thread batch by
        // batch (Zenoh's default is 2 batches).
        insert(&mut config, "transport/link/tx/queue/size/data", DATA_QUEUE_BATCHES.to_string())?;
        insert(&mut config, "scouting/multicast/enabled", self.multicast.to_string())?;
        if !self.multicast {
            // Only the given endpoints: no gossip that would teach peers other addresses.
            insert(&mut config, "scouting/gossip/enabled", "false".to_owned())?;
        }
        Ok(config)
    }

    /// Opens a session with these options.
    pub fn open(&self) -> Result<zenoh::Session, SessionError> {
        zenoh::open(self.config()?).wait().map_err(|error| SessionError::Open {
            connect: self.connect.clone(),
            listen: self.listen.clone(),
            reason: crate::zenoh_reason(&error),
        })
    }
}

fn insert(config: &mut zenoh::Config, key: &'static str, value: String) -> Result<(), SessionError> {
    config.insert_json5(key, &value).map_err(|error| SessionError::Config {
        key,
        value,
        reason: crate::zenoh_reason(&error),
    })
}

/// A JSON list of strings (endpoints hold no quotes or backslashes, but escape them anyway).
fn json_list(items: &[String]) -> String {
    let quoted: Vec<String> =
        items.iter().map(|item| format!("\"{}\"", item.replace('\\', "\\\\").replace('"', "\\\""))).collect();
    format!("[{}]", quoted.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_reach_the_config() {
        let options = SessionOptions {
            connect: vec!["tcp/127.0.0.1:7447".into()],
            listen: vec!["tcp/127.0.0.1:7448".into()],
            multicast: false,
            client: false,
        };
        let config = options.config().unwrap();
        assert_eq!(config.get_json("mode").unwrap(), "\"peer\"");
        assert_eq!(config.get_json("scouting/multicast/enabled").unwrap(), "false");
        assert!(config.get_json("connect/endpoints").unwrap().contains("tcp/127.0.0.1:7447"));
        assert!(config.get_json("listen/endpoints").unwrap().contains("tcp/127.0.0.1:7448"));
    }

    #[test]
    fn a_bad_endpoint_is_a_clear_error() {
        let options = SessionOptions { connect: vec!["nonsense".into()], ..SessionOptions::default() };
        let error = options.config().unwrap_err().to_string();
        assert!(error.contains("connect/endpoints"), "{error}");
    }
}
