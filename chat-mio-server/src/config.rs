//! Server settings, shared by the command line (clap) and the library API.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser};

/// How the server runs. [`Config::default`] gives the same values as the command line with no
/// arguments.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address and port to listen on (use 0.0.0.0:8000 to accept connections from other hosts).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,

    /// Serve the browser client from this directory instead of the copy built into the binary.
    /// Files are read once, at start-up.
    #[arg(long, value_name = "DIR")]
    pub static_dir: Option<PathBuf>,

    /// Largest text message a client may send, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub max_message_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            config: Config,
        }
        // Parsing no arguments yields exactly the documented defaults, so the two never drift.
        Defaults::parse_from(["chat-mio-server"]).config
    }
}
