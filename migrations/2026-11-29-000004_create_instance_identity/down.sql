DROP TABLE instance_identity;
