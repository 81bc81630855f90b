DROP TABLE agents;
DROP TABLE approval_execution_attempts;
DROP TABLE approval_requests;
DROP TABLE intervention_policies;
