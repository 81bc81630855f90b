DROP TABLE shared_resources;
DROP TABLE grants;
