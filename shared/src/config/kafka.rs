//! How to reach Kafka (brokers, TLS, SASL) and which topics to use.

use clap::{Args, ValueEnum};

/// How to reach Kafka and which topics to use.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma separated.
    #[arg(
        long = "kafka-brokers",
        env = "KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,

    /// Prefix for every topic name (e.g. "staging." gives "staging.user-created_v1").
    #[arg(
        long = "kafka-topic-prefix",
        env = "KAFKA_TOPIC_PREFIX",
        default_value = ""
    )]
    pub topic_prefix: String,

    /// Partitions of each topic when the service creates it.
    #[arg(long = "kafka-topic-partitions", env = "KAFKA_TOPIC_PARTITIONS", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub topic_partitions: i32,

    /// Replication factor of each topic when the service creates it. Unset: as many
    /// replicas as the cluster has brokers, three at most.
    #[arg(long = "kafka-topic-replication", env = "KAFKA_TOPIC_REPLICATION", value_parser = clap::value_parser!(i32).range(1..=16))]
    pub topic_replication: Option<i32>,

    /// What the event topics keep when the service creates them: every record for ever, or
    /// (compact) at least each user's last record per topic. The dead-letter topic keeps
    /// every record either way.
    #[arg(long = "kafka-topic-retention", env = "KAFKA_TOPIC_RETENTION", value_enum, default_value_t = crate::kafka::Retention::Forever)]
    pub topic_retention: crate::kafka::Retention,

    /// Whether the service creates the topics it finds missing. "false" where the platform
    /// manages topics (Strimzi, Terraform, a cloud console) and the service has no right to
    /// create them: it then only checks that they exist. Either way, an existing topic whose
    /// partitions, cleanup policy or retention differ from these settings stops the start.
    #[arg(long = "kafka-manage-topics", env = "KAFKA_MANAGE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub manage_topics: bool,

    /// How clients reach the brokers.
    #[arg(long = "kafka-security-protocol", env = "KAFKA_SECURITY_PROTOCOL", value_enum, default_value_t = SecurityProtocol::Plaintext)]
    pub security_protocol: SecurityProtocol,

    /// SASL mechanism, with a sasl_* protocol.
    #[arg(long = "kafka-sasl-mechanism", env = "KAFKA_SASL_MECHANISM", value_enum, default_value_t = SaslMechanism::ScramSha512)]
    pub sasl_mechanism: SaslMechanism,

    /// SASL user name, with a sasl_* protocol.
    #[arg(long = "kafka-sasl-username", env = "KAFKA_SASL_USERNAME")]
    pub sasl_username: Option<String>,

    /// SASL password, with a sasl_* protocol. Best given in the environment, from a Secret.
    #[arg(
        long = "kafka-sasl-password",
        env = "KAFKA_SASL_PASSWORD",
        hide_env_values = true
    )]
    pub sasl_password: Option<String>,

    /// CA certificates (PEM) the brokers' certificates must chain to, with an ssl or sasl_ssl
    /// protocol. Without it: the system's CA store.
    #[arg(long = "kafka-ssl-ca-file", env = "KAFKA_SSL_CA_FILE")]
    pub ssl_ca_file: Option<std::path::PathBuf>,
}

/// librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

/// librdkafka's `sasl.mechanism` (GSSAPI is not built in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SaslMechanism {
    #[value(name = "PLAIN")]
    Plain,
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
}

impl KafkaArgs {
    /// How the event topics are made.
    pub fn topic_settings(&self) -> crate::kafka::TopicSettings {
        crate::kafka::TopicSettings {
            partitions: self.topic_partitions,
            replication: self.topic_replication,
            retention: self.topic_retention,
            manage: self.manage_topics,
        }
    }

    /// The cluster as these settings reach it; a clear error when they are incomplete (a
    /// SASL protocol without its credentials, a CA file that cannot be read).
    pub fn cluster(&self) -> Result<crate::kafka::Cluster, String> {
        let protocol = match self.security_protocol {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        };
        let mut security = vec![("security.protocol", protocol.to_owned())];
        if matches!(
            self.security_protocol,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        ) {
            let (Some(username), Some(password)) = (&self.sasl_username, &self.sasl_password)
            else {
                return Err(format!(
                    "KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
                ));
            };
            let mechanism = match self.sasl_mechanism {
                SaslMechanism::Plain => "PLAIN",
                SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
                SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            };
            security.push(("sasl.mechanism", mechanism.to_owned()));
            security.push(("sasl.username", username.clone()));
            security.push(("sasl.password", password.clone()));
        }
        if let Some(ca_file) = &self.ssl_ca_file {
            std::fs::File::open(ca_file).map_err(|error| {
                format!(
                    "cannot read KAFKA_SSL_CA_FILE {}: {error}",
                    ca_file.display()
                )
            })?;
            security.push(("ssl.ca.location", ca_file.display().to_string()));
        }
        Ok(crate::kafka::Cluster::secured(&self.brokers, security))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(args: &[&str]) -> Result<crate::kafka::Cluster, String> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            kafka: KafkaArgs,
        }
        let cli = <Cli as clap::Parser>::try_parse_from(
            std::iter::once("test").chain(args.iter().copied()),
        )
        .map_err(|error| error.to_string())?;
        cli.kafka.cluster()
    }

    #[test]
    fn sasl_needs_its_credentials_and_a_ca_file_must_be_readable() {
        let missing = kafka(&["--kafka-security-protocol=sasl_ssl"]).unwrap_err();
        assert!(missing.contains("KAFKA_SASL_USERNAME"), "{missing}");
        let cluster = kafka(&[
            "--kafka-security-protocol=sasl_plaintext",
            "--kafka-sasl-mechanism=SCRAM-SHA-256",
            "--kafka-sasl-username=users",
            "--kafka-sasl-password=secret",
        ])
        .unwrap();
        assert!(format!("{cluster:?}").contains("SCRAM-SHA-256"));
        let unreadable = kafka(&[
            "--kafka-security-protocol=ssl",
            "--kafka-ssl-ca-file=/nonexistent.pem",
        ])
        .unwrap_err();
        assert!(unreadable.contains("/nonexistent.pem"), "{unreadable}");
    }
}
