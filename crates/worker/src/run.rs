//! Wires schedules to apalis: per schedule, a cron producer that enqueues each tick once (an
//! idempotency key shared by every worker process) and a Redis consumer that runs the job.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use apalis::prelude::*;
use apalis_core::backend::Vacuum;
use apalis_cron::{CronScheduler, Tick};
use apalis_redis::{Config as RedisConfig, RedisStorage};
use backon::{ExponentialBuilder, Retryable};
use powernode_domain::schedule::tick_key;
use secrecy::ExposeSecret;
use tokio::sync::Notify;

use crate::jobs::{self, TickJob};
use crate::poll::Rearming;
use crate::schedules::{self, Schedule};
use crate::settings::Settings;
use powernode_client::WorkerClient;
use powernode_client::worker::JobReportRequest;

/// Idempotency keys outlive any retry of a tick (SPEC §11: TTL 1 h).
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(3600);
/// Finished tasks stay in Redis until vacuumed; keep this much history per queue.
const TASK_HISTORY: Duration = Duration::from_secs(3600);

#[derive(Clone)]
struct Producer {
    schedule: Arc<Schedule>,
    storage: RedisStorage<TickJob>,
}

#[derive(Clone)]
struct Consumer {
    schedule: Arc<Schedule>,
    api: WorkerClient,
    redis: redis::aio::ConnectionManager,
    /// `<queue>:…idempotency…` set prefix the producer's pushes claim keys under.
    idempotency_set: String,
}

impl Consumer {
    /// A tick more than two intervals old whose successor was already offered is stale (the
    /// queue fell behind, or its consumers were down while a producer kept offering ticks):
    /// skipping those coalesces a backlog into at most one catch-up run beside the current
    /// tick, never a burst. A tick that is merely late (under load) still runs.
    async fn superseded(&self, job: &TickJob) -> bool {
        let (Ok(tick), Ok(now)) = (
            i64::try_from(job.tick),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH),
        ) else {
            return false;
        };
        let interval = i64::from(self.schedule.interval_secs);
        let age = i64::try_from(now.as_secs()).unwrap_or(i64::MAX) - tick;
        if age <= 2 * interval {
            return false;
        }
        let next = tick_key(&job.schedule, tick + interval);
        let key = format!("{}:{next}", self.idempotency_set);
        let mut conn = self.redis.clone();
        // On a Redis error, run the tick: its effect is idempotent in the API; a skipped one
        // is not recovered.
        redis::cmd("EXISTS")
            .arg(&key)
            .query_async::<bool>(&mut conn)
            .await
            .unwrap_or(false)
    }
}

async fn on_tick(tick: Tick, producer: Data<Producer>) -> Result<(), BoxDynError> {
    let schedule = &producer.schedule;
    let ts = tick.get_timestamp();
    let key = tick_key(&schedule.name, i64::try_from(ts)?);
    let task = TaskBuilder::new(TickJob {
        schedule: schedule.name.clone(),
        tick: ts,
    })
    .idempotency_key(&key)
    .build();
    let mut storage = producer.storage.clone();
    storage.push_task(task).await?;
    tracing::debug!(schedule = %schedule.name, tick = ts, "tick offered to the queue");
    match storage.vacuum_before(TASK_HISTORY).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(schedule = %schedule.name, removed = n, "vacuumed finished tasks"),
        Err(e) => tracing::warn!(schedule = %schedule.name, "could not vacuum finished tasks: {e}"),
    }
    Ok(())
}

async fn on_contact(
    job: powernode_client::worker::ContactJob,
    api: Data<WorkerClient>,
) -> Result<(), BoxDynError> {
    jobs::federation_peer_contact::run(&job, &api)
        .await
        // Retried inside the job; the next tick does the same work, so never re-scheduled.
        .map_err(|e| AbortError::new(e).into())
}

async fn on_job(
    job: TickJob,
    consumer: Data<Consumer>,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    let kind = consumer.schedule.job;
    if consumer.superseded(&job).await {
        tracing::info!(
            schedule = %job.schedule,
            tick = job.tick,
            "tick superseded by a newer one; skipped (missed ticks coalesce into one run)"
        );
        return Ok(());
    }
    // Every call of this tick carries its key: the API applies it once however often apalis
    // runs the task (SPEC §11).
    let api = consumer.api.for_tick(&tick_key(
        &job.schedule,
        i64::try_from(job.tick).unwrap_or(i64::MAX),
    ));
    let result = jobs::run(kind, &job, &api).await;
    crate::metrics::job(&job.schedule, kind.name(), result.is_ok());
    report(
        &consumer.api,
        &job,
        kind.name(),
        worker.name(),
        consumer.schedule.interval_secs,
        result.as_ref().err(),
    )
    .await;
    match result {
        Ok(()) => Ok(()),
        // Retries already happened inside the job (at most 3 attempts a tick); abort so the
        // Redis backend does not re-schedule the tick on its own.
        Err(e) => Err(AbortError::new(e).into()),
    }
}

/// Tells the API how the tick went (`powernodectl worker status`, the API's `/metrics`). A
/// failed report is logged and counted, never retried: the next tick reports again.
async fn report(
    api: &WorkerClient,
    job: &TickJob,
    job_name: &str,
    worker: &str,
    interval_secs: u32,
    error: Option<&jobs::JobFailed>,
) {
    let body = JobReportRequest {
        schedule: job.schedule.clone(),
        job: job_name.to_owned(),
        tick: i64::try_from(job.tick).unwrap_or(i64::MAX),
        outcome: if error.is_none() {
            "succeeded"
        } else {
            "failed"
        }
        .to_owned(),
        worker: worker.to_owned(),
        attempts: None,
        error: error.map(|e| e.reason.clone()),
        interval_secs: Some(interval_secs),
    };
    if let Err(e) = api.report(&body).await {
        crate::metrics::report_failed();
        tracing::warn!(schedule = %job.schedule, tick = job.tick, "could not report the job outcome to the API: {e}");
    }
}

/// Runs every schedule until SIGTERM/SIGINT. Any apalis worker failing (e.g. a registration
/// refused by Redis) stops the others and returns an error, so the process exits non-zero.
pub async fn run(settings: Settings, name: &str) -> anyhow::Result<()> {
    let schedules = schedules::resolve(&settings.schedules)?;
    let api = crate::api_client::worker_client(&settings)?;
    if let Some(listen) = &settings.metrics_listen {
        crate::metrics::serve(listen, &schedules)?;
        tracing::info!("worker metrics on http://{listen}/metrics");
    }
    let redis_url = settings.redis_url.expose_secret().to_owned();
    let conn = (|| apalis_redis::connect(redis_url.clone()))
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(15),
        )
        .notify(|e, wait| {
            tracing::warn!(
                "waiting for Redis: {e}; retrying in {:.1}s",
                wait.as_secs_f64()
            );
        })
        .await
        .map_err(|e| anyhow::anyhow!("Redis is unreachable: {e}"))?;

    let pid = std::process::id();
    let boot = uuid::Uuid::new_v4().simple().to_string();
    let boot = &boot[..12];
    let failed = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(Notify::new());

    let mut monitor = Monitor::new().should_restart({
        let failed = failed.clone();
        let stop = stop.clone();
        move |worker, error| {
            tracing::error!(worker = worker.name(), "apalis worker stopped: {error}");
            failed.store(true, Ordering::SeqCst);
            stop.notify_one();
            false
        }
    });
    for schedule in schedules {
        let schedule = Arc::new(schedule);
        let queue = schedule.redis_queue(&settings.redis_prefix);
        let config = RedisConfig::default()
            .queue(&queue)
            .idempotency_ttl(Some(IDEMPOTENCY_TTL));
        let idempotency_set = config.idempotency_key_set();
        let storage = RedisStorage::<TickJob>::new(conn.clone()).with_config(config);
        let cron = cron::Schedule::from_str(&schedule.cron)
            .map_err(|e| anyhow::anyhow!("schedule `{}`: {e}", schedule.name))?;
        let worker_name = format!("{name}-{}-{pid}-{boot}", schedule.name);
        let producer = Producer {
            schedule: schedule.clone(),
            storage: storage.clone(),
        };
        let producer_name = format!("{worker_name}-cron");
        monitor = monitor.register(move |_restarts| {
            WorkerBuilder::new(producer_name.as_str())
                .backend(CronScheduler::new(cron.clone()))
                .data(producer.clone())
                .build(on_tick)
        });
        let consumes = settings
            .queues
            .as_ref()
            .is_none_or(|qs| qs.contains(&schedule.queue));
        if consumes {
            let consumer = Consumer {
                schedule: schedule.clone(),
                api: api.clone(),
                redis: conn.clone(),
                idempotency_set,
            };
            let poll = settings.poll_interval;
            monitor = monitor.register(move |_restarts| {
                WorkerBuilder::new(worker_name.as_str())
                    .backend(storage.clone().poll_with_strategy(Rearming::new(poll)))
                    .data(consumer.clone())
                    .build(on_job)
            });
        }
        tracing::info!(
            schedule = %schedule.name,
            job = schedule.job.name(),
            queue = %queue,
            interval_secs = schedule.interval_secs,
            consumes,
            "schedule registered"
        );
    }

    // Fast establishment's contact jobs (SPEC §4) ride the `system` queue, pushed by the API.
    if settings
        .queues
        .as_ref()
        .is_none_or(|qs| qs.iter().any(|q| q == "system"))
    {
        use powernode_client::worker::ContactJob;
        let queue = ContactJob::redis_queue(&settings.redis_prefix);
        let storage = RedisStorage::<ContactJob>::new(conn.clone()).with_config(
            RedisConfig::default()
                .queue(&queue)
                .idempotency_ttl(Some(IDEMPOTENCY_TTL)),
        );
        let worker_name = format!("{name}-{}-{pid}-{boot}", ContactJob::QUEUE_NAME);
        let (poll, api) = (settings.poll_interval, api.clone());
        monitor = monitor.register(move |_restarts| {
            WorkerBuilder::new(worker_name.as_str())
                .backend(storage.clone().poll_with_strategy(Rearming::new(poll)))
                .data(api.clone())
                .build(on_contact)
        });
        tracing::info!(job = ContactJob::NAME, queue = %queue, "contact jobs consumed");
    }

    let ctx = monitor.context();
    let grace = settings.shutdown_grace;
    let run = monitor.run();
    tokio::pin!(run);
    tokio::select! {
        result = &mut run => return finish(result, &failed),
        () = shutdown_signal() => tracing::info!("shutdown requested; finishing the running job"),
        () = stop.notified() => tracing::error!("a worker failed; stopping the others"),
    }
    ctx.shutdown()?;
    match tokio::time::timeout(grace, run).await {
        Ok(result) => finish(result, &failed),
        Err(_) => anyhow::bail!("jobs still running after {}s; exiting", grace.as_secs()),
    }
}

fn finish(result: Result<(), MonitorError>, failed: &AtomicBool) -> anyhow::Result<()> {
    // Each failure was logged on one line when it happened; keep the exit message one line too.
    if result.is_err() || failed.load(Ordering::SeqCst) {
        anyhow::bail!(
            "an apalis worker failed (see the error above); exiting so the supervisor restarts us"
        );
    }
    tracing::info!("powernode-worker stopped");
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
