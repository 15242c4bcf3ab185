//! Tests for terminal sessions with a fake process: replay, several
//! clients, lagging clients, idle teardown, resizing and the end of output.
//! Every wait is bounded, so a broken session fails a test instead of hanging it.

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aicockpit_workspace::terminal::{
    TerminalClient, TerminalError, TerminalIo, TerminalOptions, TerminalRegistry, TerminalSession,
};
use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const PATIENCE: Duration = Duration::from_secs(5);

/// The test's side of a fake process.
struct FakeProcess {
    /// Sends output as if the process wrote it; dropping it (and the echo
    /// task ending) ends the output.
    output: mpsc::Sender<io::Result<Bytes>>,
    /// The task reading the process's input; it finishes when the input is dropped.
    input_reader: JoinHandle<Vec<u8>>,
    resizes: Arc<Mutex<Vec<(u16, u16)>>>,
}

/// A fake process. With `echo`, every input chunk is written back as output,
/// as a shell with echo on would; without it, input is only collected.
fn fake_process(echo: bool) -> (TerminalIo, FakeProcess) {
    let (output_sender, mut output_receiver) = mpsc::channel::<io::Result<Bytes>>(8);
    let output = futures_util::stream::poll_fn(move |context| output_receiver.poll_recv(context));
    let (session_side, mut process_side) = tokio::io::duplex(4096);
    let echo_sender = echo.then(|| output_sender.clone());
    let input_reader = tokio::spawn(async move {
        let mut received = Vec::new();
        let mut buffer = [0u8; 1024];
        loop {
            match process_side.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    received.extend_from_slice(&buffer[..read]);
                    if let Some(sender) = &echo_sender {
                        let chunk = Bytes::copy_from_slice(&buffer[..read]);
                        if sender.send(Ok(chunk)).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        received
    });
    let resizes = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&resizes);
    let io = TerminalIo::new(output, session_side, move |columns, rows| {
        recorded.lock().expect("resize log").push((columns, rows));
        async { Ok(()) }
    });
    (
        io,
        FakeProcess {
            output: output_sender,
            input_reader,
            resizes,
        },
    )
}

fn options(replay_bytes: usize, idle_timeout: Duration) -> TerminalOptions {
    TerminalOptions {
        replay_bytes,
        idle_timeout,
    }
}

/// Bytes that differ from position to position, so an off-by-one shows.
fn pattern(length: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_u32;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

async fn until(what: &str, condition: impl Fn() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
}

/// Receive until `length` bytes arrived (or the session ended).
async fn receive(client: &mut TerminalClient, length: usize) -> Vec<u8> {
    within("output", async {
        let mut received = Vec::new();
        while received.len() < length {
            match client.next().await {
                Some(bytes) => received.extend_from_slice(&bytes),
                None => break,
            }
        }
        received
    })
    .await
}

async fn send_output(process: &FakeProcess, bytes: &[u8], chunk: usize) {
    for piece in bytes.chunks(chunk) {
        within(
            "the session to take output",
            process.output.send(Ok(Bytes::copy_from_slice(piece))),
        )
        .await
        .expect("the session reads output");
    }
}

#[tokio::test]
async fn replay_holds_exactly_the_last_bytes() {
    let (io, process) = fake_process(false);
    let session = TerminalSession::start(
        "t".to_string(),
        io,
        options(64 * 1024, Duration::from_secs(60)),
    );
    let output = pattern(200 * 1024);
    // An odd chunk size, so chunks straddle the ring's boundary.
    send_output(&process, &output, 997).await;
    until("all output to be pumped", || {
        session.output_len() == output.len() as u64
    })
    .await;

    let mut client = session.attach();
    assert_eq!(client.replay.len(), 64 * 1024);
    assert_eq!(&client.replay[..], &output[output.len() - 64 * 1024..]);

    // Live output follows the replay with nothing repeated.
    send_output(&process, b"after", 100).await;
    assert_eq!(receive(&mut client, 5).await, b"after");
    assert_eq!(client.missed_bytes(), 0);

    // A single chunk larger than the ring keeps only its tail.
    let huge = pattern(100 * 1024);
    send_output(&process, &huge, huge.len()).await;
    let expected_total = (output.len() + 5 + huge.len()) as u64;
    until("the huge chunk", || session.output_len() == expected_total).await;
    let later = session.attach();
    assert_eq!(&later.replay[..], &huge[huge.len() - 64 * 1024..]);
    assert_eq!(receive(&mut client, huge.len()).await, huge);
}

#[tokio::test]
async fn two_clients_see_the_same_output() {
    let (io, _process) = fake_process(true);
    let session = TerminalSession::start(
        "t".to_string(),
        io,
        options(64 * 1024, Duration::from_secs(60)),
    );
    let mut first = session.attach();
    let mut second = session.attach();
    assert_eq!(session.clients(), 2);
    assert!(first.replay.is_empty());

    let mut typed = Vec::new();
    for line in ["ls -la\n", "echo héllo\n", "exit 0\n"] {
        within("a write", session.write(line.as_bytes()))
            .await
            .expect("write");
        typed.extend_from_slice(line.as_bytes());
    }
    let first_saw = receive(&mut first, typed.len()).await;
    let second_saw = receive(&mut second, typed.len()).await;
    assert_eq!(first_saw, typed);
    assert_eq!(second_saw, typed);

    // A third client attaching now gets everything as replay and nothing twice.
    let mut third = session.attach();
    assert_eq!(&third.replay[..], &typed[..]);
    within("a write", session.write(b"more"))
        .await
        .expect("write");
    assert_eq!(receive(&mut third, 4).await, b"more");
    assert_eq!(receive(&mut first, 4).await, b"more");
}

#[tokio::test]
async fn a_detached_client_gets_the_replay_when_it_comes_back() {
    let (io, _process) = fake_process(true);
    let session =
        TerminalSession::start("t".to_string(), io, options(1024, Duration::from_secs(60)));
    let mut client = session.attach();
    within("a write", session.write(b"one "))
        .await
        .expect("write");
    assert_eq!(receive(&mut client, 4).await, b"one ");
    drop(client);
    assert_eq!(session.clients(), 0);

    within("a write", session.write(b"two"))
        .await
        .expect("write");
    until("the echo", || session.output_len() == 7).await;
    let client = session.attach();
    assert_eq!(&client.replay[..], b"one two");
    assert_eq!(session.clients(), 1);
}

#[tokio::test]
async fn a_client_that_falls_behind_catches_up_from_the_ring() {
    let (io, process) = fake_process(false);
    let session = TerminalSession::start(
        "t".to_string(),
        io,
        options(8 * 1024, Duration::from_secs(60)),
    );
    let mut slow = session.attach();
    let output = pattern(200 * 1024);
    // Many small chunks: far more than the broadcast channel holds.
    send_output(&process, &output, 500).await;
    until("all output", || session.output_len() == output.len() as u64).await;
    let FakeProcess { output: sender, .. } = process;
    drop(sender);
    within("the session to close", session.closed()).await;

    let received = receive(&mut slow, usize::MAX).await;
    let missed = usize::try_from(slow.missed_bytes()).expect("fits");
    assert!(missed > 0, "the client should have fallen behind");
    assert_eq!(missed + received.len(), output.len());
    assert_eq!(&received[..], &output[missed..]);
    assert!(received.len() >= 8 * 1024, "at least the ring is recovered");
}

#[tokio::test]
async fn a_session_nobody_watches_closes_after_the_idle_timeout() {
    let (io, process) = fake_process(true);
    let session = TerminalSession::start(
        "t".to_string(),
        io,
        options(1024, Duration::from_millis(200)),
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!session.is_closed(), "closed before the timeout");
    within("the idle teardown", session.closed()).await;
    assert!(session.is_closed());
    // The process saw the end of its input.
    within("the process to see end of input", process.input_reader)
        .await
        .expect("reader task");
    assert!(session.write(b"too late").await.is_err());
}

#[tokio::test]
async fn an_attached_client_keeps_the_session_and_reattaching_resets_the_timer() {
    let (io, _process) = fake_process(true);
    let session = TerminalSession::start(
        "t".to_string(),
        io,
        options(1024, Duration::from_millis(400)),
    );
    let client = session.attach();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!session.is_closed(), "closed while a client was attached");

    drop(client);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let client = session.attach();
    // Stay attached past the deadline the first detach would have set.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !session.is_closed(),
        "the first detach's teardown still fired"
    );
    drop(client);
    // Idle 250 ms now and 250 ms before: idle time must not add up across attachments.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        !session.is_closed(),
        "re-attaching should have restarted the idle timer"
    );
    within("the idle teardown", session.closed()).await;
}

#[tokio::test]
async fn resizes_reach_the_process() {
    let (io, process) = fake_process(false);
    let session = TerminalSession::start("t".to_string(), io, TerminalOptions::default());
    within("a resize", session.resize(80, 24))
        .await
        .expect("resize");
    within("a resize", session.resize(132, 43))
        .await
        .expect("resize");
    assert_eq!(
        *process.resizes.lock().expect("resize log"),
        vec![(80, 24), (132, 43)]
    );
    session.close();
    assert!(session.resize(1, 1).await.is_err());
    assert_eq!(process.resizes.lock().expect("resize log").len(), 2);
}

#[tokio::test]
async fn the_end_of_output_closes_the_session_and_ends_clients() {
    let (io, process) = fake_process(false);
    let session = TerminalSession::start("t".to_string(), io, TerminalOptions::default());
    let mut client = session.attach();
    send_output(&process, b"bye\n", 100).await;
    let FakeProcess {
        output: sender,
        input_reader,
        ..
    } = process;
    drop(sender);
    assert_eq!(receive(&mut client, 4).await, b"bye\n");
    assert_eq!(within("the end", client.next()).await, None);
    within("the session to close", session.closed()).await;
    assert!(session.is_closed());
    within("the input to be dropped", input_reader)
        .await
        .expect("reader task");
    assert!(session.write(b"x").await.is_err());
    // Attaching afterwards still shows what the process last printed.
    let mut late = session.attach();
    assert_eq!(&late.replay[..], b"bye\n");
    assert_eq!(within("the end", late.next()).await, None);
}

#[tokio::test]
async fn close_tears_down_now() {
    let (io, process) = fake_process(true);
    let session = TerminalSession::start("t".to_string(), io, TerminalOptions::default());
    let mut client = session.attach();
    within("a write", session.write(b"typed"))
        .await
        .expect("write");
    assert_eq!(receive(&mut client, 5).await, b"typed");
    session.close();
    assert!(session.is_closed());
    assert_eq!(within("the end", client.next()).await, None);
    let received = within("the process to see end of input", process.input_reader)
        .await
        .expect("reader task");
    assert_eq!(received, b"typed");
}

#[tokio::test]
async fn the_registry_tracks_open_sessions() {
    let registry = TerminalRegistry::new(options(1024, Duration::from_secs(60)));
    let (io_a, _process_a) = fake_process(true);
    let (io_b, process_b) = fake_process(false);
    let a = registry.start("a", io_a).expect("start a");
    registry.start("b", io_b).expect("start b");
    assert_eq!(registry.ids(), vec!["a", "b"]);
    assert_eq!(registry.len(), 2);

    let (io_duplicate, duplicate_process) = fake_process(false);
    match registry.start("a", io_duplicate) {
        Err(TerminalError::DuplicateId { id }) => assert_eq!(id, "a"),
        other => panic!("expected DuplicateId, got {other:?}"),
    }
    // The refused process's input was dropped rather than left running.
    within("the refused input to close", duplicate_process.input_reader)
        .await
        .expect("reader task");

    let found = registry.get("a").expect("a is open");
    assert_eq!(found.id(), "a");
    within("a write", found.write(b"x")).await.expect("write");
    until("the echo reaches the original handle", || {
        a.output_len() == 1
    })
    .await;

    // A session whose process ends leaves the registry on its own.
    let FakeProcess { output: sender, .. } = process_b;
    drop(sender);
    until("b to leave the registry", || registry.get("b").is_none()).await;
    assert_eq!(registry.ids(), vec!["a"]);

    let removed = registry.remove("a").expect("a was registered");
    assert!(removed.is_closed(), "remove closes the session");
    assert!(registry.is_empty());
    assert!(registry.remove("a").is_none());

    // A closed session's id can be used again.
    let (io_again, _process_again) = fake_process(false);
    let again = TerminalSession::start("a".to_string(), io_again, TerminalOptions::default());
    registry.insert(again).expect("insert");
    assert_eq!(registry.ids(), vec!["a"]);
    assert_eq!(registry.remove_closed(), 0);
}
