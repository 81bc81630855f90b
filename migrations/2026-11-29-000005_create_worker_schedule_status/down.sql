DROP TABLE worker_schedule_status;
