//! A worker's identity, stable across restarts. A job is leased to the identity of the process
//! that claimed it; a process that restarts with the same identity takes back at once what its
//! previous life held, instead of waiting for those leases to run out.
//!
//! Two live processes must never share an identity, or both would work one job. So an identity
//! is used only while its PostgreSQL advisory lock is held, on a connection of its own that lives
//! as long as the process: the server drops the lock the moment that connection dies (a SIGKILL
//! closes it), and a second live process with the same `INSTANCE_ID` finds the lock taken and
//! works under a one-off identity instead.

use sha2::{Digest, Sha256};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::Mutex;
use tracing::{info, warn};
use uuid::Uuid;

use crate::db::jobs as store;

/// How often, and how far apart, a held identity is asked for again before a one-off one is used.
const LOCK_TRIES: u32 = 6;
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

pub struct Identity {
    /// The lease owner written on every job this process claims.
    pub owner: Uuid,
    /// The connection holding the identity's lock; `None` for a one-off identity.
    lock: Mutex<Option<PgConnection>>,
}

impl Identity {
    /// Takes the identity named `instance_id` if no live process holds it, and gives back the
    /// leases its previous life left behind; otherwise a one-off identity.
    pub async fn claim(pool: &PgPool, instance_id: &str) -> Identity {
        let owner = stable_owner(instance_id);
        let mut attempt = lock(pool, owner).await;
        for _ in 0..LOCK_TRIES {
            if !matches!(attempt, Ok(None)) {
                break;
            }
            // Held: by a live process, or by one killed a moment ago whose connection the server
            // has not closed yet. Only the second lets go.
            tokio::time::sleep(LOCK_RETRY).await;
            attempt = lock(pool, owner).await;
        }
        match attempt {
            Ok(Some(connection)) => {
                match store::release_all(pool, owner).await {
                    Ok(0) => {}
                    Ok(n) => info!(released = n, "took back the jobs this instance held before it restarted"),
                    Err(e) => {
                        warn!(error = %e, "could not take back this instance's earlier jobs; their leases expire")
                    }
                }
                Identity { owner, lock: Mutex::new(Some(connection)) }
            }
            Ok(None) => {
                warn!(
                    instance_id,
                    "another live process uses this INSTANCE_ID; this one works under a one-off identity \
                     (give each process its own INSTANCE_ID)"
                );
                Identity::one_off()
            }
            Err(e) => {
                warn!(error = %e, "could not lock this instance's identity; working under a one-off identity");
                Identity::one_off()
            }
        }
    }

    fn one_off() -> Identity {
        Identity { owner: Uuid::new_v4(), lock: Mutex::new(None) }
    }

    /// Lets go of the identity (at shutdown, after the leases were released).
    pub async fn release(&self) {
        if let Some(connection) = self.lock.lock().await.take() {
            let _ = connection.close().await;
        }
    }
}

/// The same owner id for the same instance id, on every host and every run.
fn stable_owner(instance_id: &str) -> Uuid {
    let digest = Sha256::digest(format!("imagine-bot worker {instance_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Opens a connection of its own and takes the identity's advisory lock on it; `None` when a
/// live process holds it.
async fn lock(pool: &PgPool, owner: Uuid) -> Result<Option<PgConnection>, sqlx::Error> {
    let mut connection = pool.connect_options().connect().await?;
    let key = i64::from_be_bytes(owner.as_bytes()[..8].try_into().expect("8 bytes"));
    if store::try_lock_identity(&mut connection, key).await? {
        Ok(Some(connection))
    } else {
        let _ = connection.close().await;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_id_always_names_the_same_owner() {
        assert_eq!(stable_owner("host-a/shards-0-0-of-1"), stable_owner("host-a/shards-0-0-of-1"));
        assert_ne!(stable_owner("host-a/shards-0-0-of-1"), stable_owner("host-b/shards-0-0-of-1"));
    }
}
