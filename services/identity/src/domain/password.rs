//! Password policy and hashing.
//!
//! The policy follows NIST SP 800-63B: length matters, composition rules do not, and known-bad
//! passwords are refused. Hashing is Argon2id with at least the OWASP-recommended cost.

use std::fmt;
use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use cobro_kit::error::InvalidField;

/// Minimum length in characters (Unicode scalar values).
pub const MIN_LEN: usize = 12;
/// Maximum length in characters; long enough for any passphrase, short enough to bound hashing work.
pub const MAX_LEN: usize = 128;
/// Byte bound checked before counting characters, so oversized input is refused without scanning it.
const MAX_BYTES: usize = 512;

/// Upper bounds on the parameters accepted from a stored hash or a caller, so a corrupted or hostile
/// PHC string cannot make verification allocate gigabytes or spin for minutes.
const MAX_M_COST: u32 = 1 << 20;
const MAX_T_COST: u32 = 64;
const MAX_P_COST: u32 = 16;

const TOO_COMMON: &str = "is too common; choose a longer, less predictable passphrase";

/// Well-known passwords of at least `MIN_LEN` characters taken from public breach corpora, lowercase.
/// Shorter ones are already refused by the length rule.
const COMMON: &[&str] = &[
    "password1234",
    "password12345",
    "password123456",
    "password1234567",
    "password123!",
    "password2020",
    "password2021",
    "password2022",
    "password2023",
    "password2024",
    "password2025",
    "passwordpassword",
    "password1password",
    "passw0rd1234",
    "p@ssw0rd1234",
    "p@ssword1234",
    "pa55word1234",
    "passw0rdpassw0rd",
    "mypassword123",
    "mypassword1234",
    "thisismypassword",
    "newpassword1",
    "newpassword123",
    "oldpassword1",
    "temppassword1",
    "temporarypassword",
    "resetpassword",
    "forgotpassword",
    "passwordreset",
    "securepassword",
    "strongpassword",
    "changeme1234",
    "changeme123!",
    "changemenow1",
    "letmein12345",
    "letmein123456",
    "letmeinletmein",
    "welcome12345",
    "welcome123456",
    "welcome1234!",
    "123456789012",
    "1234567890123",
    "12345678901234",
    "123456789123",
    "1234567891011",
    "123123123123",
    "123412341234",
    "111111111111",
    "000000000000",
    "121212121212",
    "987654321098",
    "1234567890ab",
    "1234567890qwerty",
    "abcd12345678",
    "abc123456789",
    "abc123abc123",
    "abcd1234abcd",
    "abcdefg12345",
    "abcdefgh1234",
    "a1b2c3d4e5f6",
    "aa1234567890",
    "qwertyuiop12",
    "qwertyuiop123",
    "qwertyuiopasdf",
    "qwertyuiopasdfghjkl",
    "qwertyuiopasdfghjklzxcvbnm",
    "qwerty123456",
    "qwerty1234567",
    "qwerty123456789",
    "qwerty12345!",
    "qwertyqwerty",
    "qwertyasdfgh",
    "qwer1234qwer",
    "1qaz2wsx3edc",
    "1qaz2wsx3edc4rfv",
    "1q2w3e4r5t6y",
    "1q2w3e4r5t6y7u",
    "q1w2e3r4t5y6",
    "zaq12wsxcde3",
    "zaq1zaq1zaq1",
    "123qweasdzxc",
    "qweasdzxc123",
    "qazwsxedcrfv",
    "qazwsxedc123",
    "1234qwerasdf",
    "1234qwerasdfzxcv",
    "asdfghjkl123",
    "asdfghjkl1234",
    "asdfasdfasdf",
    "asdf1234asdf",
    "zxcvbnm12345",
    "zxcvbnmasdfghjkl",
    "zxcv1234zxcv",
    "iloveyou1234",
    "iloveyou12345",
    "iloveyouiloveyou",
    "iloveyoubaby",
    "iloveyousomuch",
    "iloveyou4ever",
    "iloveyouforever",
    "iloveyou2much",
    "loveyouforever",
    "administrator",
    "administrator1",
    "administrator123",
    "admin1234567",
    "adminadmin123",
    "rootpassword",
    "superuser123",
    "default12345",
    "masterkey123",
    "accessgranted",
    "trustno1trustno1",
    "monkey123456",
    "monkeymonkey",
    "dragon123456",
    "dragondragon",
    "football1234",
    "football12345",
    "baseball1234",
    "basketball12",
    "basketball123",
    "superman1234",
    "batman123456",
    "spiderman123",
    "starwars1234",
    "harrypotter1",
    "harrypotter123",
    "doctorwho123",
    "princess1234",
    "princess12345",
    "sunshine1234",
    "sunshine12345",
    "shadow123456",
    "master123456",
    "michael12345",
    "jennifer1234",
    "babygirl1234",
    "lovelylovely",
    "blessed12345",
    "jesuschrist1",
    "jesusislord1",
    "godisgood123",
    "jesus1234567",
    "pokemon12345",
    "whatever1234",
    "computer1234",
    "internet1234",
    "nothing12345",
    "secret123456",
    "mysecret1234",
    "opensesame12",
    "opensesame123",
    "helloworld12",
    "helloworld123",
    "hellohello12",
    "hello1234567",
    "goodmorning1",
    "goodbye12345",
    "liverpool123",
    "chelsea12345",
    "arsenal12345",
    "manchesterunited",
    "mercedes1234",
    "metallica123",
    "samsung12345",
    "samsunggalaxy",
    "facebook1234",
    "facebook123456",
    "google123456",
    "linkedin1234",
    "twitter12345",
    "instagram123",
    "microsoft123",
    "windows12345",
    "apple1234567",
    "iphone123456",
    "playstation1",
    "playstation2",
    "playstation3",
    "playstation4",
    "playstation5",
    "nintendo1234",
    "minecraft123",
    "minecraft1234",
    "fortnite1234",
    "callofduty12",
    "correcthorsebatterystaple",
    "thequickbrownfox",
    "thequickbrownfoxjumpsoverthelazydog",
    "loremipsumdolor",
];

/// Keyboard and alphabet orders whose runs ("3456789012", "zyxwvu…", "qwertyuiop") are guessed early.
const SEQUENCES: &[&str] = &["0123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiop", "asdfghjkl", "zxcvbnm"];

/// Checks a new password against the policy. `email` is the account's address; the password may be
/// neither the address nor its local part. Error reasons are user-facing and never echo the password.
pub fn check_policy(field: &str, password: &str, email: &str) -> Result<(), InvalidField> {
    let too_long = || InvalidField::new(field, format!("must be at most {MAX_LEN} characters"));
    if password.len() > MAX_BYTES {
        return Err(too_long());
    }
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(InvalidField::new(field, format!("must be at least {MIN_LEN} characters")));
    }
    if len > MAX_LEN {
        return Err(too_long());
    }
    if password.chars().any(char::is_control) {
        return Err(InvalidField::new(field, "must not contain control characters"));
    }

    let lowered = password.to_lowercase();
    if is_email_or_local_part(&lowered, email) {
        return Err(InvalidField::new(field, "must not be your email address"));
    }
    if COMMON.contains(&lowered.as_str()) || is_short_repetition(&lowered) || is_sequence_run(&lowered) {
        return Err(InvalidField::new(field, TOO_COMMON));
    }
    Ok(())
}

fn is_email_or_local_part(lowered_password: &str, email: &str) -> bool {
    let email = email.trim().to_lowercase();
    if email.is_empty() {
        return false;
    }
    let local = email.rsplit_once('@').map_or(email.as_str(), |(local, _)| local);
    lowered_password == email || (!local.is_empty() && lowered_password == local)
}

/// True for a unit of up to four characters repeated, e.g. "aaaaaaaaaaaa" or "abababababab".
fn is_short_repetition(password: &str) -> bool {
    (1..=4).any(|unit| {
        let pattern: Vec<char> = password.chars().take(unit).collect();
        !pattern.is_empty() && pattern.iter().cycle().zip(password.chars()).all(|(a, b)| *a == b)
    })
}

/// True when the password walks one of `SEQUENCES` forwards or backwards, wrapping at the end
/// ("123456789012", "lkjhgfdsalkj").
fn is_sequence_run(password: &str) -> bool {
    SEQUENCES.iter().any(|seq| {
        let reversed: String = seq.chars().rev().collect();
        follows_cyclically(password, seq) || follows_cyclically(password, &reversed)
    })
}

fn follows_cyclically(password: &str, seq: &str) -> bool {
    let Some(first) = password.chars().next() else {
        return false;
    };
    let Some(start) = seq.chars().position(|c| c == first) else {
        return false;
    };
    seq.chars().cycle().skip(start).zip(password.chars()).all(|(a, b)| a == b)
}

/// Failure to configure or run the password hash. Carries no password material.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(argon2::Error),
    #[error("argon2 parameters exceed the supported maximum")]
    ParamsTooCostly,
    #[error("password hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
}

/// Argon2id password hasher producing PHC strings.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    /// Hash of a fixed throwaway password, made on first use, so lookups of unknown users can spend
    /// the same time as a wrong password.
    dummy: OnceLock<String>,
}

impl PasswordHasher {
    /// Argon2id v0x13 with the OWASP minimum cost (m = 19456 KiB, t = 2, p = 1).
    pub fn new() -> Self {
        // The crate's default is exactly the OWASP minimum; a test pins it via the PHC prefix.
        Self::from_params(Params::DEFAULT)
    }

    /// A hasher with custom cost, for deployments that can afford more than the default. Hashes made
    /// with other parameters still verify and report `needs_rehash`.
    pub fn with_params(m_cost: u32, t_cost: u32, p_cost: u32) -> Result<Self, HashError> {
        if m_cost > MAX_M_COST || t_cost > MAX_T_COST || p_cost > MAX_P_COST {
            return Err(HashError::ParamsTooCostly);
        }
        let params = Params::new(m_cost, t_cost, p_cost, None).map_err(HashError::Params)?;
        Ok(Self::from_params(params))
    }

    fn from_params(params: Params) -> Self {
        Self { argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params), dummy: OnceLock::new() }
    }

    /// Hashes `secret` with a fresh random salt; returns the PHC string to store.
    pub fn hash(&self, secret: &str) -> Result<String, HashError> {
        let salt = SaltString::generate(&mut OsRng);
        let hash = self.argon2.hash_password(secret.as_bytes(), &salt).map_err(HashError::Hash)?;
        Ok(hash.to_string())
    }

    /// Checks `secret` against a stored PHC string, using the algorithm and cost encoded in it so older
    /// hashes keep working. False on mismatch and on any malformed or out-of-bounds hash.
    pub fn verify(&self, secret: &str, phc: &str) -> bool {
        let Ok(hash) = PasswordHash::new(phc) else {
            return false;
        };
        let Ok(params) = Params::try_from(&hash) else {
            return false;
        };
        if params.m_cost() > MAX_M_COST || params.t_cost() > MAX_T_COST || params.p_cost() > MAX_P_COST {
            return false;
        }
        self.argon2.verify_password(secret.as_bytes(), &hash).is_ok()
    }

    /// Spends the cost of one verification and discards the result. Call it when the user does not
    /// exist, so response time does not reveal which accounts exist.
    pub fn verify_dummy(&self, secret: &str) {
        let dummy = self.dummy.get_or_init(|| self.hash("cobro-timing-equalizer-password").unwrap_or_default());
        std::hint::black_box(self.verify(secret, dummy));
    }

    /// True when `phc` was not made with this hasher's algorithm, version and cost (or cannot be
    /// parsed), meaning it should be replaced after the next successful login.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(hash) = PasswordHash::new(phc) else {
            return true;
        };
        let Ok(params) = Params::try_from(&hash) else {
            return true;
        };
        let current = self.argon2.params();
        let same_output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
            == current.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let same = Algorithm::try_from(hash.algorithm).is_ok_and(|alg| alg == Algorithm::Argon2id)
            && hash.version == Some(u32::from(Version::V0x13))
            && params.m_cost() == current.m_cost()
            && params.t_cost() == current.t_cost()
            && params.p_cost() == current.p_cost()
            && same_output_len;
        !same
    }
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params = self.argon2.params();
        f.debug_struct("PasswordHasher")
            .field("algorithm", &"argon2id")
            .field("m_cost", &params.m_cost())
            .field("t_cost", &params.t_cost())
            .field("p_cost", &params.p_cost())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const EMAIL: &str = "Ana.Lopez@example.com";

    fn reason(password: &str) -> String {
        check_policy("password", password, EMAIL).unwrap_err().reason
    }

    #[test]
    fn common_list_is_lowercase_and_long_enough() {
        assert!(COMMON.len() >= 150);
        for entry in COMMON {
            assert!(entry.chars().count() >= MIN_LEN, "{entry} is shorter than MIN_LEN");
            assert_eq!(*entry, entry.to_lowercase(), "{entry} is not lowercase");
        }
    }

    #[test]
    fn length_bounds() {
        assert_eq!(reason("short pass"), "must be at least 12 characters");
        assert_eq!(reason(""), "must be at least 12 characters");
        assert!(check_policy("password", "plum violet 7", EMAIL).is_ok());
        let exactly_min = "Tx9#kq2!Lm4z";
        assert_eq!(exactly_min.chars().count(), 12);
        assert!(check_policy("password", exactly_min, EMAIL).is_ok());

        let base = "walnut-harbor-ledger-";
        let of_len = |n: usize| base.chars().cycle().take(n).collect::<String>();
        assert!(check_policy("password", &of_len(128), EMAIL).is_ok());
        assert_eq!(reason(&of_len(129)), "must be at most 128 characters");
        assert_eq!(reason(&"x".repeat(10_000)), "must be at most 128 characters");
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // Eleven two-byte characters: 22 bytes but still too short.
        assert_eq!(reason("ñáéíóúüçàèì"), "must be at least 12 characters");
        assert!(check_policy("password", "ñandú cigüeña pingüino", EMAIL).is_ok());
        // 128 three-byte characters fit the byte bound and the character bound.
        let cjk: String = (0..128u32).map(|i| char::from_u32(0x4E00 + i * 7).unwrap()).collect();
        assert_eq!(cjk.len(), 384);
        assert!(check_policy("password", &cjk, EMAIL).is_ok());
    }

    #[test]
    fn common_passwords_rejected_case_insensitively() {
        assert_eq!(reason("password1234"), TOO_COMMON);
        assert_eq!(reason("PassWord1234"), TOO_COMMON);
        assert_eq!(reason("QWERTYUIOP12"), TOO_COMMON);
        assert_eq!(reason("Administrator"), TOO_COMMON);
        assert_eq!(reason("1q2w3e4r5t6y"), TOO_COMMON);
    }

    #[test]
    fn repetitions_and_sequences_rejected() {
        assert_eq!(reason("aaaaaaaaaaaaaaa"), TOO_COMMON);
        assert_eq!(reason("ZZZZZZZZZZZZ"), TOO_COMMON);
        assert_eq!(reason("abababababab"), TOO_COMMON);
        assert_eq!(reason("abcdabcdabcdabcd"), TOO_COMMON);
        assert_eq!(reason("345678901234"), TOO_COMMON);
        assert_eq!(reason("abcdefghijklmnop"), TOO_COMMON);
        assert_eq!(reason("zyxwvutsrqponm"), TOO_COMMON);
        assert_eq!(reason("9876543210987"), TOO_COMMON);
        assert_eq!(reason("qwertyuiopqwe"), TOO_COMMON);
    }

    #[test]
    fn email_and_local_part_rejected() {
        assert_eq!(reason("ana.lopez@example.com"), "must not be your email address");
        assert_eq!(reason("ANA.LOPEZ@EXAMPLE.COM"), "must not be your email address");
        let err = check_policy("password", "christina.maria", "Christina.Maria@example.com").unwrap_err();
        assert_eq!(err.reason, "must not be your email address");
        assert!(check_policy("password", "christina.maria!", "christina.maria@example.com").is_ok());
        assert!(check_policy("password", "long enough phrase", "").is_ok());
    }

    #[test]
    fn control_characters_rejected() {
        assert_eq!(reason("tab\there-is-long"), "must not contain control characters");
        assert_eq!(reason("null\0byte-is-long"), "must not contain control characters");
        assert_eq!(reason("newline\nis-long"), "must not contain control characters");
    }

    #[test]
    fn good_passphrase_passes() {
        assert!(check_policy("password", "correct lamp ferry oyster", EMAIL).is_ok());
        assert!(check_policy("password", "Invoice-Ledger-Quokka-42", EMAIL).is_ok());
    }

    #[test]
    fn error_names_field_and_hides_password() {
        let secret = "password1234";
        let err = check_policy("new_password", secret, EMAIL).unwrap_err();
        assert_eq!(err.field, "new_password");
        assert!(err.to_string().starts_with("new_password: "));
        assert!(!err.to_string().contains(secret));
        assert!(!format!("{err:?}").contains(secret));
    }

    #[test]
    fn hash_and_verify_round_trip() {
        let hasher = PasswordHasher::new();
        let phc = hasher.hash("correct lamp ferry oyster").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(hasher.verify("correct lamp ferry oyster", &phc));
        assert!(!hasher.verify("correct lamp ferry oysters", &phc));
        assert!(!hasher.verify("", &phc));
        assert!(!phc.contains("correct lamp"));
    }

    #[test]
    fn salts_differ_between_hashes() {
        let hasher = PasswordHasher::default();
        assert_ne!(hasher.hash("same input twice").unwrap(), hasher.hash("same input twice").unwrap());
    }

    #[test]
    fn malformed_phc_is_false() {
        let hasher = PasswordHasher::new();
        for phc in [
            "",
            "$",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$",
            "$argon2id$v=19$m=abc,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=99$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$bcrypt$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$2b$12$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyzabcde",
            "$argon2id$v=19$m=4294967295,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=19456,t=4294967295,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert!(!hasher.verify("anything at all", phc), "{phc}");
            assert!(hasher.needs_rehash(phc), "{phc}");
        }
    }

    #[test]
    fn older_params_still_verify_and_need_rehash() {
        let old = PasswordHasher::with_params(8_192, 1, 1).unwrap();
        let phc = old.hash("a passphrase from 2019").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"));

        let current = PasswordHasher::new();
        assert!(current.verify("a passphrase from 2019", &phc));
        assert!(current.needs_rehash(&phc));
        assert!(!old.needs_rehash(&phc));

        let fresh = current.hash("a passphrase from 2019").unwrap();
        assert!(!current.needs_rehash(&fresh));
        assert!(old.needs_rehash(&fresh));
    }

    #[test]
    fn other_argon2_variants_need_rehash() {
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::DEFAULT);
        let salt = SaltString::generate(&mut OsRng);
        let phc = argon2i.hash_password(b"legacy variant pass", &salt).unwrap().to_string();
        let hasher = PasswordHasher::new();
        assert!(hasher.verify("legacy variant pass", &phc));
        assert!(hasher.needs_rehash(&phc));
    }

    #[test]
    fn with_params_rejects_invalid_and_excessive() {
        assert!(matches!(PasswordHasher::with_params(0, 2, 1), Err(HashError::Params(_))));
        assert!(matches!(PasswordHasher::with_params(19_456, 0, 1), Err(HashError::Params(_))));
        assert!(matches!(PasswordHasher::with_params(u32::MAX, 2, 1), Err(HashError::ParamsTooCostly)));
        assert!(PasswordHasher::with_params(65_536, 3, 1).is_ok());
    }

    #[test]
    fn verify_dummy_runs_and_caches() {
        let hasher = PasswordHasher::new();
        hasher.verify_dummy("whoever@example.com guess");
        let first = hasher.dummy.get().cloned().unwrap();
        assert!(first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        hasher.verify_dummy("another guess entirely");
        assert_eq!(hasher.dummy.get(), Some(&first));
    }

    #[test]
    fn debug_shows_params_only() {
        let hasher = PasswordHasher::new();
        hasher.verify_dummy("x");
        let debug = format!("{hasher:?}");
        assert!(debug.contains("m_cost: 19456"));
        assert!(!debug.contains("$argon2"));
    }
}
