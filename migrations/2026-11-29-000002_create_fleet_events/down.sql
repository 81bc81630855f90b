DROP TABLE fleet_events;
