//! The language server's WebSocket takes JSON-RPC in text frames, and in
//! binary frames when they are UTF-8; a binary frame that is not is
//! answered with a parse error (not grown into replacement characters).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use aicockpit_server::db::SiteRole;
use serde_json::{json, Value};
use support::{upgrade, TestServer};

/// Send one client frame (masked with a zero key, so the payload is as is).
fn send(stream: &mut TcpStream, opcode: u8, payload: &[u8]) {
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    stream.write_all(&frame).unwrap();
}

/// The next text frame from the server, as JSON (pings are skipped).
fn receive(stream: &mut TcpStream) -> Value {
    loop {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).unwrap();
        let length = match head[1] & 0x7f {
            126 => {
                let mut n = [0u8; 2];
                stream.read_exact(&mut n).unwrap();
                u64::from(u16::from_be_bytes(n))
            }
            127 => {
                let mut n = [0u8; 8];
                stream.read_exact(&mut n).unwrap();
                u64::from_be_bytes(n)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; length as usize];
        stream.read_exact(&mut payload).unwrap();
        if head[0] & 0x0f == 1 {
            return serde_json::from_slice(&payload).unwrap();
        }
    }
}

#[test]
fn binary_frames_are_read_as_utf8_text_or_answered_with_a_parse_error() {
    let server = TestServer::start(None);
    let mia = server.user("mia", "mia-password-1", SiteRole::Member);
    let token = server.token(&mia);
    server.create_workspace(&token, "shop", false).expect(201);
    let (status, body, stream) = upgrade(&server, &token, "/api/v1/workspaces/shop/lsp");
    assert_eq!(status, 101, "{body}");
    let mut stream = stream.unwrap();

    send(&mut stream, 0x2, &[0xff, 0xfe, 0xfd]);
    let reply = receive(&mut stream);
    assert_eq!(reply["error"]["code"], -32700, "{reply}");

    // A UTF-8 binary frame is a message like a text frame.
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "capabilities": {} },
    });
    send(&mut stream, 0x2, initialize.to_string().as_bytes());
    let reply = receive(&mut stream);
    assert_eq!(reply["id"], 1, "{reply}");
    assert!(reply["result"]["capabilities"].is_object(), "{reply}");
}
