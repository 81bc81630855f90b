DROP TABLE worker_ticks;
