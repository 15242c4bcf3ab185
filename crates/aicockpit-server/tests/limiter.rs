//! Attacks on the login limiter, played against its public API (security
//! review of `aicockpit serve`, finding "limiter reset by spraying"): a
//! locked-out user name must stay locked out whatever else an attacker
//! sends, so the per-name budget really bounds guesses of one password.

use std::net::{IpAddr, Ipv6Addr};

use aicockpit_server::auth::LoginLimiter;

/// The per-name and per-address budget (`auth::LOGIN_ATTEMPTS`).
const BUDGET: u32 = 10;

#[test]
fn spraying_other_names_does_not_unlock_a_locked_user() {
    let limiter = LoginLimiter::default();
    let guesser: IpAddr = "10.0.0.1".parse().unwrap();
    for _ in 0..BUDGET {
        assert!(limiter.check("victim", Some(guesser)).is_ok());
        limiter.failed("victim", Some(guesser));
    }
    let fresh: IpAddr = "10.0.0.2".parse().unwrap();
    assert!(
        limiter.check("victim", Some(fresh)).is_err(),
        "the name is locked after its budget, from any address"
    );

    // An attacker with an IPv6 prefix has as many addresses as they like:
    // each one spends its own budget on names of its own, which fills the
    // limiter's table past its bound.
    for host in 0u32..10_001 {
        let address = IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            (host >> 16) as u16,
            host as u16,
        ));
        // Every one of these attempts passes the server's check (a new
        // name from a new address); only the failures are recorded here.
        for attempt in 0..BUDGET {
            limiter.failed(&format!("spray-{host}-{attempt}"), Some(address));
        }
    }

    assert!(
        limiter.check("victim", Some(fresh)).is_err(),
        "spraying 100 000 other names reset the victim's lockout: the next {BUDGET} guesses \
         at their password are free (auth.rs fail_keys clears the whole table when it is full)"
    );
}

/// Checks of a signed-in caller's password (to change or confirm it) and
/// logins have budgets of their own, by name and by address: failed logins
/// by anyone, even from the owner's own address (a proxy), cannot stop the
/// owner from changing their password; guesses by someone holding one of
/// the owner's sessions burn that session's budget only, not the owner's
/// logins nor their other sessions.
#[test]
fn own_password_checks_and_logins_have_their_own_budgets() {
    let limiter = LoginLimiter::default();
    let proxy: IpAddr = "10.0.0.1".parse().unwrap();
    for _ in 0..BUDGET {
        limiter.begin("ada", Some(proxy)).unwrap();
    }
    assert!(
        limiter.begin("ada", Some(proxy)).is_err(),
        "logins are locked"
    );
    assert!(
        limiter
            .begin_own_password("session:ada-laptop", Some(proxy))
            .is_ok(),
        "the owner can still change the password, from the same address"
    );

    let limiter = LoginLimiter::default();
    let thief: IpAddr = "10.0.0.7".parse().unwrap();
    let owner: IpAddr = "10.0.0.9".parse().unwrap();
    for _ in 0..BUDGET {
        limiter
            .begin_own_password("session:stolen", Some(thief))
            .unwrap();
    }
    assert!(limiter
        .begin_own_password("session:stolen", Some(owner))
        .is_err());
    assert!(
        limiter
            .begin_own_password("session:bob-new-login", Some(owner))
            .is_ok(),
        "another session of the owner is not blocked"
    );
    assert!(
        limiter.begin("bob", Some(owner)).is_ok(),
        "bob can still log in"
    );
    assert!(
        limiter.begin("carol", Some(thief)).is_ok(),
        "these guesses do not spend the address's login budget"
    );
    assert!(
        limiter
            .begin_own_password("session:another-stolen", Some(thief))
            .is_err(),
        "but its budget for these checks"
    );
    // A right password gives the session's budget back.
    limiter.own_password_succeeded("session:stolen", Some(owner));
    assert!(limiter
        .begin_own_password("session:stolen", Some(owner))
        .is_ok());
}
