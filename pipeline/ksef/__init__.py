"""Pure KSeF domain: rules, numbers, formats and crypto. No Kafka, no Faust, no network."""
