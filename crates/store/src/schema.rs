// @generated automatically by Diesel CLI.

diesel::table! {
    accept_failures (id) {
        id -> Int8,
        source -> Text,
        peer_id -> Uuid,
        failed_at -> Timestamptz,
    }
}

diesel::table! {
    agents (id) {
        id -> Uuid,
        name -> Text,
        status -> Text,
        interval_secs -> Int4,
        status_reason -> Nullable<Text>,
        status_changed_by -> Nullable<Uuid>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    approval_execution_attempts (id) {
        id -> Int8,
        request_id -> Uuid,
        started_at -> Timestamptz,
    }
}

diesel::table! {
    approval_requests (id) {
        id -> Uuid,
        action -> Text,
        params -> Jsonb,
        params_sealed -> Nullable<Bytea>,
        requested_by -> Uuid,
        status -> Text,
        expires_at -> Timestamptz,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamptz>,
        comments -> Nullable<Text>,
        execution_status -> Text,
        execution_error -> Nullable<Text>,
        executed_at -> Nullable<Timestamptz>,
        result -> Nullable<Jsonb>,
        result_sealed -> Nullable<Bytea>,
        result_claimed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    fleet_events (id) {
        id -> Uuid,
        kind -> Text,
        severity -> Text,
        source -> Text,
        peer_id -> Nullable<Uuid>,
        payload -> Jsonb,
        correlation_id -> Nullable<Uuid>,
        emitted_at -> Timestamptz,
    }
}

diesel::table! {
    governance_reports (id) {
        id -> Uuid,
        trigger -> Text,
        requested_by -> Nullable<Uuid>,
        started_at -> Timestamptz,
        finished_at -> Timestamptz,
        counts -> Jsonb,
        findings -> Jsonb,
        new_fingerprints -> Array<Nullable<Text>>,
        resolved_findings -> Jsonb,
    }
}

diesel::table! {
    grants (id) {
        id -> Uuid,
        peer_id -> Uuid,
        token_digest -> Text,
        resource_kind -> Text,
        resource_id -> Nullable<Text>,
        permission_scopes -> Array<Nullable<Text>>,
        node_instance_ids -> Array<Nullable<Text>>,
        sdwan_network_ids -> Array<Nullable<Text>>,
        source_cidrs -> Array<Nullable<Cidr>>,
        expires_at -> Timestamptz,
        auto_renew -> Bool,
        revoked_at -> Nullable<Timestamptz>,
        revocation_reason -> Nullable<Text>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        last_denied_at -> Nullable<Timestamptz>,
        last_denial -> Nullable<Text>,
    }
}

diesel::table! {
    idempotency_keys (operator_id, key) {
        operator_id -> Uuid,
        key -> Text,
        request_sha256 -> Text,
        state -> Text,
        response_sealed -> Nullable<Bytea>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    instance_identity (singleton) {
        singleton -> Bool,
        instance_id -> Uuid,
        ca_cert_pem -> Text,
        ca_sha256 -> Text,
        ca_key_sealed -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    intervention_policies (action) {
        action -> Text,
        policy -> Text,
        timeout_secs -> Int4,
        timeout_action -> Text,
        auto_approve_allowed -> Bool,
        timeout_approve_allowed -> Bool,
        lowered_policy -> Nullable<Text>,
        lowered_until -> Nullable<Timestamptz>,
        lowered_by -> Nullable<Uuid>,
        lowered_reason -> Nullable<Text>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    operators (id) {
        id -> Uuid,
        name -> Text,
        token_digest -> Text,
        permissions -> Array<Nullable<Text>>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        disabled_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        session_epoch -> Int4,
    }
}

diesel::table! {
    peer_backoff (peer_id) {
        peer_id -> Uuid,
        failures -> Int4,
        retry_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    peer_certificates (id) {
        id -> Uuid,
        peer_id -> Uuid,
        direction -> Text,
        serial -> Text,
        subject -> Text,
        fingerprint_sha256 -> Nullable<Text>,
        cert_pem -> Nullable<Text>,
        key_sealed -> Nullable<Bytea>,
        not_before -> Nullable<Timestamptz>,
        not_after -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        revocation_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    peers (id) {
        id -> Uuid,
        origin -> Text,
        remote_instance_url -> Text,
        remote_instance_id -> Nullable<Uuid>,
        remote_ca_pem -> Nullable<Text>,
        remote_ca_sha256 -> Nullable<Text>,
        contract_version_agreed -> Nullable<Int4>,
        last_outbound_heartbeat_at -> Nullable<Timestamptz>,
        last_outbound_error -> Nullable<Text>,
        pending_outbound_key -> Nullable<Bytea>,
        peer_kind -> Text,
        spawn_role -> Nullable<Text>,
        spawn_mode -> Nullable<Text>,
        remote_prefix_advertisement -> Nullable<Text>,
        endpoints -> Jsonb,
        extension_slugs -> Jsonb,
        capabilities -> Jsonb,
        sync_cursor -> Nullable<Jsonb>,
        metadata -> Jsonb,
        status -> Text,
        signed_at -> Nullable<Timestamptz>,
        last_handshake_at -> Nullable<Timestamptz>,
        last_heartbeat_at -> Nullable<Timestamptz>,
        acceptance_token_digest -> Nullable<Text>,
        acceptance_token_expires_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        claimed_until -> Nullable<Timestamptz>,
        claim_token -> Nullable<Uuid>,
        status_changed_at -> Timestamptz,
        outbound_failing_since -> Nullable<Timestamptz>,
        heartbeat_bucket -> Timestamptz,
    }
}

diesel::table! {
    server_certificates (id) {
        id -> Uuid,
        hosts -> Text,
        cert_pem -> Text,
        key_sealed -> Bytea,
        not_before -> Timestamptz,
        not_after -> Timestamptz,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    shared_resources (kind, id) {
        kind -> Text,
        id -> Text,
        document -> Jsonb,
        version -> Int4,
        updated_by_peer -> Nullable<Uuid>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    worker_schedule_status (schedule) {
        schedule -> Text,
        job -> Text,
        last_outcome -> Text,
        last_tick -> Int8,
        last_worker -> Text,
        last_success_at -> Nullable<Timestamptz>,
        last_failure_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        runs -> Int8,
        failures -> Int8,
        updated_at -> Timestamptz,
        interval_secs -> Nullable<Int4>,
    }
}

diesel::table! {
    worker_ticks (key) {
        key -> Text,
        state -> Text,
        response -> Nullable<Jsonb>,
        started_at -> Timestamptz,
        lease_until -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        replays -> Int4,
    }
}

diesel::joinable!(approval_requests -> intervention_policies (action));
diesel::joinable!(grants -> peers (peer_id));
diesel::joinable!(idempotency_keys -> operators (operator_id));
diesel::joinable!(peer_backoff -> peers (peer_id));
diesel::joinable!(peer_certificates -> peers (peer_id));

diesel::allow_tables_to_appear_in_same_query!(
    accept_failures,
    agents,
    approval_execution_attempts,
    approval_requests,
    fleet_events,
    governance_reports,
    grants,
    idempotency_keys,
    instance_identity,
    intervention_policies,
    operators,
    peer_backoff,
    peer_certificates,
    peers,
    server_certificates,
    shared_resources,
    worker_schedule_status,
    worker_ticks,
);
