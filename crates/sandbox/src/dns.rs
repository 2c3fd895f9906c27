//! A DNS zone served on loopback UDP, for the tests of ferry's email domain check
//! (`migration.email_mx_check`): domains with an MX, with only an address, with a null MX
//! (RFC 7505), and one that never answers; any other name is NXDOMAIN. It answers
//! authoritatively as a real server does, and remembers every question it was asked, so a
//! test can see that only domains were sent.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, MX};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// What the zone holds for a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// An MX record naming this mail host (which has an A record of its own).
    Mx(String),
    /// An A record and no MX: mail goes to the address (RFC 5321 §5.1).
    Address(Ipv4Addr),
    /// `MX 0 .`: the domain takes no mail (RFC 7505).
    NullMx,
    /// Questions about it are never answered (a dead server, for timeouts).
    Silent,
}

/// One question the zone was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// The name asked about, lower-case, without the trailing dot.
    pub name: String,
    /// The record type asked for (`MX`, `A`, `AAAA`).
    pub ty: String,
}

/// A zone being served; the server stops when this is dropped.
pub struct ServedZone {
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    questions: Arc<Mutex<Vec<Question>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ServedZone {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ServedZone {
    /// Every question asked so far, in order.
    pub fn questions(&self) -> Vec<Question> {
        self.questions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Serves `entries` (domain → entry; domains in lower case) on a free loopback UDP port.
pub async fn serve(entries: BTreeMap<String, Entry>) -> std::io::Result<ServedZone> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let addr = socket.local_addr()?;
    let questions = Arc::new(Mutex::new(Vec::new()));
    let asked = Arc::clone(&questions);
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(request) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(query) = request.queries.first() else {
                continue;
            };
            let name = query.name().to_lowercase().to_ascii();
            let name = name.trim_end_matches('.').to_owned();
            asked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Question {
                    name: name.clone(),
                    ty: query.query_type().to_string(),
                });
            let Some(reply) = answer(&entries, &request, &name, query.query_type()) else {
                continue;
            };
            if let Ok(bytes) = reply.to_vec() {
                let _ = socket.send_to(&bytes, from).await;
            }
        }
    });
    Ok(ServedZone {
        addr,
        questions,
        task,
    })
}

/// The zone's reply to `request` about `name`; `None` for a silent domain.
fn answer(
    entries: &BTreeMap<String, Entry>,
    request: &Message,
    name: &str,
    ty: RecordType,
) -> Option<Message> {
    let mut reply = Message::response(request.metadata.id, OpCode::Query);
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.add_queries(request.queries.clone());
    let owner = request.queries.first()?.name().clone();
    // Mail hosts named by an MX entry have an address.
    let mail_host = entries
        .values()
        .any(|e| matches!(e, Entry::Mx(host) if host == name));
    let records: Vec<RData> = match (entries.get(name), ty) {
        (Some(Entry::Silent), _) => return None,
        (Some(Entry::Mx(host)), RecordType::MX) => {
            vec![RData::MX(MX::new(
                10,
                Name::from_ascii(format!("{host}.")).ok()?,
            ))]
        }
        (Some(Entry::NullMx), RecordType::MX) => vec![RData::MX(MX::new(0, Name::root()))],
        (Some(Entry::Address(ip)), RecordType::A) => vec![RData::A(A(*ip))],
        (None, RecordType::A) if mail_host => vec![RData::A(A(Ipv4Addr::new(192, 0, 2, 25)))],
        (Some(_), _) => Vec::new(),
        (None, _) if mail_host => Vec::new(),
        (None, _) => {
            reply.metadata.response_code = ResponseCode::NXDomain;
            Vec::new()
        }
    };
    for data in records {
        reply.add_answer(Record::from_rdata(owner.clone(), 300, data));
    }
    Some(reply)
}
