//! Accounts for the `--auth accounts` browser tests, added as `chat-mio-server user add` adds
//! them: an argon2id hash (`chat_auth::hash_password`) stored with `chat_store::accounts`.

use std::path::Path;

use chat_auth::Secret;

/// Adds the account `name` with `password` to the database in `data_dir`.
pub fn add_user(data_dir: &Path, name: &str, password: &str, admin: bool) {
    let phc = chat_auth::hash_password(&Secret::new(password)).expect("hash the password");
    chat_store::accounts::add_user(data_dir, name, &phc, admin)
        .unwrap_or_else(|e| panic!("add user {name}: {e}"));
}
