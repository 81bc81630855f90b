// embed_migrations! does not make cargo watch the folder; without this a new migration
// leaves the crate "fresh" and binaries embed stale migrations.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
