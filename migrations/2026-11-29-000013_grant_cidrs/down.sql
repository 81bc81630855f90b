ALTER TABLE grants ALTER COLUMN source_cidrs DROP DEFAULT;
ALTER TABLE grants DROP CONSTRAINT grants_source_cidrs_check;
ALTER TABLE grants ALTER COLUMN source_cidrs TYPE text[] USING source_cidrs::text[];
ALTER TABLE grants ALTER COLUMN source_cidrs SET DEFAULT '{}';
ALTER TABLE grants ADD CONSTRAINT grants_source_cidrs_check CHECK (array_position(source_cidrs, NULL) IS NULL);
