//! The container recipe, checked where no container engine runs (this machine has the docker
//! client but no daemon, and base images cannot be pulled from here): the `Dockerfile` parses
//! (`dockerfile-parser`), is multi-stage, and its final stage runs the binary as a non-root
//! user with the data directory as a volume, a health check on `/healthz` at the port it
//! exposes and binds, and SIGTERM to stop; `.dockerignore` keeps the build context to sources.

use dockerfile_parser::{Dockerfile, Instruction};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The final stage's instructions as (NAME, arguments) pairs, names in upper case.
fn final_stage(dockerfile: &Dockerfile) -> Vec<(String, String)> {
    let stages = dockerfile.stages();
    let last = stages.stages.last().expect("a stage");
    last.instructions
        .iter()
        .map(|i| match i {
            Instruction::From(f) => ("FROM".into(), f.image.content.clone()),
            Instruction::Arg(a) => ("ARG".into(), a.name.content.clone()),
            Instruction::Label(_) => ("LABEL".into(), String::new()),
            Instruction::Run(r) => ("RUN".into(), format!("{:?}", r.expr)),
            Instruction::Entrypoint(e) => ("ENTRYPOINT".into(), format!("{:?}", e.expr)),
            Instruction::Cmd(c) => ("CMD".into(), format!("{:?}", c.expr)),
            Instruction::Copy(c) => (
                "COPY".into(),
                format!(
                    "{} {}",
                    c.flags
                        .iter()
                        .map(|f| format!("--{}={}", f.name.content, f.value.content))
                        .collect::<Vec<_>>()
                        .join(" "),
                    c.destination.content
                ),
            ),
            Instruction::Env(e) => (
                "ENV".into(),
                e.vars
                    .iter()
                    .map(|v| format!("{}={}", v.key.content, v.value))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            Instruction::Misc(m) => (
                m.instruction.content.to_uppercase(),
                m.arguments.to_string(),
            ),
        })
        .collect()
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_unprivileged_in_another() {
    let text = std::fs::read_to_string(format!("{ROOT}/Dockerfile")).expect("read Dockerfile");
    let dockerfile = Dockerfile::parse(&text).unwrap_or_else(|e| panic!("Dockerfile: {e}"));
    let stages = dockerfile.stages();
    assert!(stages.stages.len() >= 2, "multi-stage");
    let build = &stages.stages[0];
    assert_eq!(build.name.as_deref(), Some("build"));
    let builds = build.instructions.iter().any(|i| match i {
        Instruction::Run(r) => {
            let run = format!("{:?}", r.expr);
            run.contains("cargo build --release --locked -p chat-mio-server")
        }
        _ => false,
    });
    assert!(
        builds,
        "the build stage runs cargo build --release --locked"
    );

    let run = final_stage(&dockerfile);
    let all = |name: &str| -> Vec<&str> {
        run.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, a)| a.trim())
            .collect()
    };
    let one = |name: &str| -> &str {
        let found = all(name);
        assert_eq!(found.len(), 1, "one {name} in the final stage: {run:?}");
        found[0]
    };
    assert!(
        all("COPY")
            .iter()
            .any(|c| c.starts_with("--from=build") && c.ends_with("/usr/local/bin/chat-mio-server")),
        "the binary is copied from the build stage: {run:?}"
    );
    let user = one("USER");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        !["", "root", "0"].contains(&uid),
        "the final stage runs as a non-root user, not {user:?}"
    );
    assert!(one("VOLUME").contains("/data"), "{run:?}");
    assert_eq!(one("STOPSIGNAL"), "SIGTERM");
    let port = one("EXPOSE");
    let env = all("ENV").join(" ");
    assert!(
        env.contains(&format!("CHAT_BIND=0.0.0.0:{port}")),
        "binds all interfaces on the exposed port {port}: {env}"
    );
    assert!(env.contains("CHAT_DATA_DIR=/data"), "{env}");
    let health = one("HEALTHCHECK");
    assert!(
        health.contains("/healthz") && health.contains(&format!("127.0.0.1/{port}")),
        "the health check asks /healthz on port {port}: {health}"
    );
    assert!(one("ENTRYPOINT").contains("/usr/local/bin/chat-mio-server"));
    // The user owns the volume's directory (a new named volume copies its owner).
    assert!(
        all("RUN")
            .iter()
            .any(|r| r.contains("useradd") && r.contains("chown chat:chat /data")),
        "{run:?}"
    );
}

#[test]
fn the_build_context_leaves_out_builds_and_data() {
    let ignore =
        std::fs::read_to_string(format!("{ROOT}/.dockerignore")).expect("read .dockerignore");
    let lines: Vec<&str> = ignore.lines().map(str::trim).collect();
    for entry in [".git", "target", "node_modules", "chat-data"] {
        assert!(lines.contains(&entry), ".dockerignore lacks {entry}");
    }
}
