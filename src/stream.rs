//! A statement query's result, fetched ahead on the I/O thread.
//!
//! [`Prefetch::start`] starts a task on the I/O thread that runs GetFlightInfo, then DoGet, and
//! decodes each Flight message into a record batch, pushing it into a queue of
//! `prefetch_batches` slots. When the queue is full the task stops reading, HTTP/2 flow control
//! stops the server, and memory stays at queue size × message size whatever the table size.
//! The backend takes batches with [`Prefetch::next`]. Dropping the `Prefetch` (end of scan,
//! rescan, ERROR or abort) aborts the task, which drops the gRPC stream and so cancels it on
//! the server.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use kalam_flight::{Error, KalamClient};
use tokio::sync::mpsc;

use crate::runtime::{self, Task};

enum Message {
    Schema(SchemaRef),
    /// A batch, with the bytes of the Flight messages that carried it.
    Batch(RecordBatch, u64),
    /// Sent after the last batch, so that a task that stopped for any other reason is not
    /// mistaken for the end of the result.
    End,
    Failed(Error),
}

pub struct Prefetch {
    schema: SchemaRef,
    queue: mpsc::Receiver<Message>,
    _task: Task<()>,
}

impl Prefetch {
    /// Sends the query and waits for the server to accept it (its schema arrives first).
    pub fn start(
        client: KalamClient,
        sql: String,
        user_id: Option<String>,
        transaction: Option<kalam_flight::TransactionId>,
        prefetch_batches: usize,
    ) -> Result<Prefetch, Error> {
        let (sender, mut queue) = mpsc::channel(prefetch_batches.max(1));
        let task = runtime::spawn(async move {
            let mut stream = match client.query_in(&sql, user_id.as_deref(), transaction.as_ref()).await {
                Ok(stream) => stream,
                Err(e) => {
                    let _ = sender.send(Message::Failed(e)).await;
                    return;
                }
            };
            if sender.send(Message::Schema(stream.schema().clone())).await.is_err() {
                return;
            }
            let mut counted = 0;
            loop {
                let message = match stream.next_batch().await {
                    Ok(Some(batch)) => {
                        let bytes = stream.received_bytes() - counted;
                        counted = stream.received_bytes();
                        Message::Batch(batch, bytes)
                    }
                    Ok(None) => Message::End,
                    Err(e) => Message::Failed(e),
                };
                let last = matches!(message, Message::Failed(_) | Message::End);
                if sender.send(message).await.is_err() || last {
                    return;
                }
            }
        });
        match runtime::recv(&mut queue) {
            Some(Message::Schema(schema)) => Ok(Prefetch { schema, queue, _task: task }),
            Some(Message::Failed(e)) => Err(e),
            Some(Message::Batch(..) | Message::End) | None => {
                Err(Error::Protocol("the query's result ended before its schema arrived".into()))
            }
        }
    }

    /// The result's schema, as the server announced it.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The next batch and the bytes of the Flight messages that carried it, or `None` at the
    /// end of the result.
    pub fn next(&mut self) -> Result<Option<(RecordBatch, u64)>, Error> {
        match runtime::recv(&mut self.queue) {
            Some(Message::Batch(batch, bytes)) => Ok(Some((batch, bytes))),
            Some(Message::Failed(e)) => Err(e),
            Some(Message::End) => Ok(None),
            Some(Message::Schema(_)) => Err(Error::Protocol("a second schema arrived mid-result".into())),
            None => Err(Error::Protocol("the result stream stopped before its end".into())),
        }
    }
}
