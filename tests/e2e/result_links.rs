//! Result links from the provider's answer are fetched only when they are safe: `https` to a
//! public address, or the configured provider's own host. A hostile or compromised answer cannot
//! point the bot at its cloud's metadata service or at an internal one.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use crate::support::{self, JobRow, TestBot, WAIT, shortapi::Behaviour};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_links_to_private_addresses_are_never_fetched() {
    let bot = TestBot::start().await;
    // An internal service on this machine that the answer points at: the test counts who calls.
    let internal = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let internal_addr = internal.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    tokio::spawn({
        let connections = connections.clone();
        async move {
            while let Ok((stream, _)) = internal.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        }
    });
    let urls = vec![
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.0.0.1/x.png".to_owned(),
        format!("http://{internal_addr}/x.png"),
        format!("https://{internal_addr}/y.png"),
    ];
    bot.shortapi.script("hostile links", Behaviour::SucceedWithImages { urls });
    let cmd = bot.imagine("hostile links");
    bot.send(&cmd).await;

    let token = cmd.token();
    let failed = |message: &serde_json::Value| message["content"].as_str().unwrap_or("").contains("Failed");
    let settled = support::eventually(WAIT, || async {
        connections.load(Ordering::SeqCst) > 0 || bot.discord.original_message(&token).is_some_and(|m| failed(&m))
    })
    .await;
    assert_eq!(connections.load(Ordering::SeqCst), 0, "the bot connected to the internal service");
    assert!(settled, "the reply says the job failed: {:#}", bot.discord.original_message(&token).unwrap_or_default());

    // One calm sentence, without the links; the job is refunded.
    let reply = bot.discord.original_message(&token).unwrap();
    let content = reply["content"].as_str().unwrap();
    assert!(content.contains("could not make this image"), "{content}");
    assert!(!reply.to_string().contains("169.254") && !reply.to_string().contains("10.0.0.1"), "{reply:#}");
    assert!(reply["attachments"].as_array().is_none_or(|a| a.iter().all(|f| f["filename"] != "x.png")));
    bot.wait_job_settled(&cmd).await;
    let JobRow { status, counted, .. } = bot.job(&cmd).await.unwrap();
    assert_eq!((status.as_str(), counted), ("failed", false), "a provider failure, refunded");
    assert_eq!(connections.load(Ordering::SeqCst), 0, "never fetched, not even later");
    bot.stop().await;
}
