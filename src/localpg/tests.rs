use super::*;

#[test]
fn postmaster_pid_gives_pid_data_directory_and_port() {
    let text = "4242\n/srv/imagine/.data/postgres\n1764590000\n54320\n\n127.0.0.1\n  5432001    32768\nready   \n";
    let postmaster = parse_postmaster_pid(text).unwrap();
    assert_eq!(postmaster, Postmaster { pid: 4242, data_dir: "/srv/imagine/.data/postgres".into(), port: 54320 });
    assert_eq!(parse_postmaster_pid("4242\n/srv/db\n"), None, "a file cut short");
    assert_eq!(parse_postmaster_pid(""), None);
}

#[test]
fn a_stale_postmaster_pid_is_not_a_running_cluster() {
    let dir = std::env::temp_dir().join(format!("localpg-stale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // This test's own pid: alive, but not postgres.
    let text = format!("{}\n{}\n0\n54320\n", std::process::id(), dir.display());
    std::fs::write(dir.join("postmaster.pid"), text).unwrap();
    assert_eq!(running_postmaster(&dir), None);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn trust_anywhere_in_pg_hba_is_found() {
    assert!(trusts_anyone("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"));
    assert!(trusts_anyone("host  all  all  ::1/128  trust  # older versions\n"));
    assert!(!trusts_anyone(PG_HBA));
    assert!(!trusts_anyone("# local all all trust\nlocal all all scram-sha-256 # not trust\n"));
}

#[test]
fn passwords_are_long_random_and_url_safe() {
    let (a, b) = (new_password().unwrap(), new_password().unwrap());
    assert_eq!(a.len(), 64);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
}

#[test]
fn the_password_file_is_private() {
    let dir = std::env::temp_dir().join(format!("localpg-private-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(PASSWORD_FILE);
    write_private(&file, "s3cret", false).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(read_password(&dir).unwrap().as_deref(), Some("s3cret"));
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600, "tightened again");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_cluster_debug_print_hides_the_url() {
    let cluster = Cluster { url: "postgres://postgres:s3cret@127.0.0.1:54320".into(), started: true };
    assert!(!format!("{cluster:?}").contains("s3cret"));
}
