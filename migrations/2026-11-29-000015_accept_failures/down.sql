DROP TABLE accept_failures;
