//! Ranks as processes, on one machine or several: a [`Collective`] over burn's own network
//! layer (`burn-communication`, WebSocket). Rank 0 listens at `--address`; every other rank
//! connects to it, says which rank it is and which run it belongs to, and then each exchange
//! goes through rank 0: the others send their values, rank 0 sends everyone's back, in rank
//! order. Star-shaped and simple: the values exchanged per step are the backbone's features and
//! gradients, small next to a step's compute on the ranks this is meant for.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use burn_communication::websocket::{WsClient, WsClientChannel, WsServer, WsServerChannel};
use burn_communication::{Address, CommunicationChannel, Message, ProtocolClient, ProtocolServer};
use tokio::runtime::Runtime;

use super::{Collective, RankError};

/// The route the ranks meet on.
const ROUTE: &str = "amcl-ranks";

/// How long the ranks wait for each other to start (rank 0 for the others to connect, the
/// others for rank 0 to listen).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(300);

/// Kinds of message.
const VALUES: u8 = 0;
const STOPPED: u8 = 1;

/// One rank of a group of processes.
pub struct NetworkGroup {
    rank: usize,
    world: usize,
    runtime: Runtime,
    links: Mutex<Links>,
}

impl std::fmt::Debug for NetworkGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NetworkGroup(rank {} of {})", self.rank, self.world)
    }
}

/// Rank 0 holds a channel to every other rank (index r - 1); the others one to rank 0.
enum Links {
    Hub { peers: Vec<WsServerChannel>, _shutdown: tokio::sync::oneshot::Sender<()> },
    Spoke { hub: Box<WsClientChannel> },
}

impl NetworkGroup {
    /// Joins the group of `world` ranks that meets at `address` (`host:port`) as `rank`.
    /// `run` identifies the run (its configuration): ranks of different runs refuse each other.
    pub fn join(rank: usize, world: usize, address: &str, run: &str) -> Result<Self> {
        if world < 2 || rank >= world {
            bail!("--rank {rank} --world {world}: need 0 <= rank < world and world >= 2");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting the network runtime")?;
        let links = if rank == 0 {
            runtime.block_on(listen(world, address, run))?
        } else {
            runtime.block_on(connect(rank, world, address, run))?
        };
        Ok(Self { rank, world, runtime, links: Mutex::new(links) })
    }
}

/// Rank 0: listens on `address`'s port and waits for ranks 1..world to say who they are.
async fn listen(world: usize, address: &str, run: &str) -> Result<Links> {
    let port = port_of(address)?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("--address {address}: cannot listen on port {port}"))?;
    let (arrived, mut arrivals) = tokio::sync::mpsc::unbounded_channel::<WsServerChannel>();
    let server = WsServer::new(port).route(ROUTE, move |channel: WsServerChannel| async move {
        let _ = arrived.send(channel);
    });
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve_on(listener, async move {
        let _ = stop.await;
    }));
    eprintln!("rank 0: waiting for {} more rank(s) at {address}", world - 1);
    let mut peers: Vec<Option<WsServerChannel>> = (1..world).map(|_| None).collect();
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    while peers.iter().any(Option::is_none) {
        let mut channel = tokio::time::timeout_at(deadline, arrivals.recv())
            .await
            .map_err(|_| {
                let missing: Vec<String> = peers
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.is_none())
                    .map(|(i, _)| (i + 1).to_string())
                    .collect();
                anyhow::anyhow!(
                    "rank(s) {} did not connect to {address} within {} s",
                    missing.join(", "),
                    CONNECT_TIMEOUT.as_secs()
                )
            })?
            .context("the listener stopped")?;
        let hello = channel.recv().await.ok().flatten().context("a rank left before greeting")?;
        let (rank, their_world, their_run) = parse_hello(&hello.data)?;
        let reply = if their_world != world {
            Some(format!("rank {rank} was started with --world {their_world}, rank 0 with {world}"))
        } else if their_run != run {
            Some(format!("rank {rank} was started with another configuration than rank 0"))
        } else if rank == 0 || rank >= world || peers[rank - 1].is_some() {
            Some(format!("a second process says it is rank {rank} (of {world})"))
        } else {
            None
        };
        if let Some(reason) = reply {
            let _ = channel.send(stopped_message(0, &reason)).await;
            bail!("{reason}");
        }
        channel.send(Message::new(vec![VALUES].into())).await.ok();
        eprintln!("rank 0: rank {rank} joined");
        peers[rank - 1] = Some(channel);
    }
    Ok(Links::Hub { peers: peers.into_iter().map(Option::unwrap).collect(), _shutdown: shutdown })
}

/// Rank r > 0: connects to rank 0 (retrying while it starts) and greets it.
async fn connect(rank: usize, world: usize, address: &str, run: &str) -> Result<Links> {
    let started = Instant::now();
    let target = Address::from(address);
    let mut hub = loop {
        match WsClient::connect(target.clone(), ROUTE).await {
            Ok(channel) => break channel,
            Err(err) if started.elapsed() < CONNECT_TIMEOUT => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => bail!(
                "rank {rank}: rank 0 did not answer at {address} within {} s ({err})",
                CONNECT_TIMEOUT.as_secs()
            ),
        }
    };
    let mut hello = (rank as u32).to_le_bytes().to_vec();
    hello.extend((world as u32).to_le_bytes());
    hello.extend(run.as_bytes());
    greet(&mut hub, hello).await?;
    Ok(Links::Spoke { hub: Box::new(hub) })
}

/// Sends the greeting and reads rank 0's answer (accepted, or why not).
async fn greet(hub: &mut WsClientChannel, hello: Vec<u8>) -> Result<()> {
    hub.send(Message::new(hello.into())).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let answer = hub.recv().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    match answer {
        Some(m) if m.data.first() == Some(&VALUES) => Ok(()),
        Some(m) => bail!("rank 0 refused this rank: {}", parse_stopped(&m.data).1),
        None => bail!("rank 0 closed the connection"),
    }
}

fn port_of(address: &str) -> Result<u16> {
    Address::from(address)
        .port()
        .with_context(|| format!("--address {address}: expected host:port"))
}

fn parse_hello(data: &[u8]) -> Result<(usize, usize, String)> {
    if data.len() < 8 {
        bail!("a rank sent a malformed greeting");
    }
    let rank = u32::from_le_bytes(data[0..4].try_into().unwrap()) as usize;
    let world = u32::from_le_bytes(data[4..8].try_into().unwrap()) as usize;
    Ok((rank, world, String::from_utf8_lossy(&data[8..]).into_owned()))
}

fn stopped_message(rank: usize, reason: &str) -> Message {
    let mut data = vec![STOPPED];
    data.extend((rank as u32).to_le_bytes());
    data.extend(reason.as_bytes());
    Message::new(data.into())
}

fn parse_stopped(data: &[u8]) -> (usize, String) {
    let rank = data.get(1..5).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()) as usize);
    (rank, String::from_utf8_lossy(data.get(5..).unwrap_or(&[])).into_owned())
}

fn encode(parts: &[&[f32]]) -> Message {
    let total: usize = parts.iter().map(|p| 8 + 4 * p.len()).sum();
    let mut data = Vec::with_capacity(1 + total);
    data.push(VALUES);
    for part in parts {
        data.extend((part.len() as u64).to_le_bytes());
        for v in part.iter() {
            data.extend(v.to_le_bytes());
        }
    }
    Message::new(data.into())
}

fn decode(data: &[u8]) -> Option<Vec<Vec<f32>>> {
    let mut parts = Vec::new();
    let mut at = 1;
    while at < data.len() {
        let len = u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?) as usize;
        at += 8;
        let bytes = data.get(at..at + 4 * len)?;
        parts.push(
            bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
        );
        at += 4 * len;
    }
    Some(parts)
}

/// What a message from rank `from` says: values, or that a rank stopped.
fn values_from(from: usize, message: Option<Message>) -> Result<Vec<Vec<f32>>, RankError> {
    let gone = |why: &str| RankError::Stopped { rank: from, reason: why.to_string() };
    let message = message.ok_or_else(|| gone("its connection closed"))?;
    match message.data.first() {
        Some(&VALUES) => decode(&message.data).ok_or_else(|| gone("it sent a malformed message")),
        Some(&STOPPED) => {
            let (rank, reason) = parse_stopped(&message.data);
            Err(RankError::Stopped { rank, reason })
        }
        _ => Err(gone("it sent a malformed message")),
    }
}

impl Collective for NetworkGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn all_gather(&self, data: Vec<f32>) -> Result<Vec<Arc<Vec<f32>>>, RankError> {
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        self.runtime.block_on(async {
            match &mut *links {
                Links::Hub { peers, .. } => {
                    let mut all = vec![data];
                    let mut failure = None;
                    for (i, peer) in peers.iter_mut().enumerate() {
                        let rank = i + 1;
                        let received = peer.recv().await.ok().flatten();
                        match values_from(rank, received) {
                            Ok(mut parts) if parts.len() == 1 => all.push(parts.remove(0)),
                            Ok(_) => {
                                let reason = "it sent a malformed message".into();
                                failure = Some(RankError::Stopped { rank, reason });
                                break;
                            }
                            Err(err) => {
                                failure = Some(err);
                                break;
                            }
                        }
                    }
                    if let Some(err) = failure {
                        // Tell the others who stopped, then stop.
                        if let RankError::Stopped { rank, reason } = &err {
                            for peer in peers.iter_mut() {
                                let _ = peer.send(stopped_message(*rank, reason)).await;
                            }
                        }
                        return Err(err);
                    }
                    let parts: Vec<&[f32]> = all.iter().map(Vec::as_slice).collect();
                    let message = encode(&parts);
                    for (i, peer) in peers.iter_mut().enumerate() {
                        if peer.send(Message::new(message.data.clone())).await.is_err() {
                            return Err(RankError::Stopped {
                                rank: i + 1,
                                reason: "its connection closed".into(),
                            });
                        }
                    }
                    Ok(all.into_iter().map(Arc::new).collect())
                }
                Links::Spoke { hub } => {
                    let sent = hub.send(encode(&[&data])).await;
                    let lost =
                        || RankError::Stopped { rank: 0, reason: "its connection closed".into() };
                    sent.map_err(|_| lost())?;
                    let received = hub.recv().await.ok().flatten();
                    let parts = values_from(0, received)?;
                    if parts.len() != self.world {
                        return Err(lost());
                    }
                    Ok(parts.into_iter().map(Arc::new).collect())
                }
            }
        })
    }

    fn abort(&self, reason: &str) {
        let Ok(mut links) = self.links.try_lock() else { return };
        let message = stopped_message(self.rank, reason);
        self.runtime.block_on(async {
            match &mut *links {
                Links::Hub { peers, .. } => {
                    for peer in peers.iter_mut() {
                        let _ = peer.send(Message::new(message.data.clone())).await;
                    }
                }
                Links::Spoke { hub } => {
                    let _ = hub.send(message).await;
                }
            }
        });
    }
}
