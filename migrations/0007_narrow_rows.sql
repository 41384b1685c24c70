-- Keep the models table narrow: the raw upstream object and the API document (most of a row's
-- bytes) are moved out of line to TOAST, so the scans behind filtered lists and their counts read
-- the typed columns only, and a page detoasts just the rows it returns.
ALTER TABLE models SET (toast_tuple_target = 128);
ALTER TABLE models ALTER COLUMN raw SET STORAGE EXTERNAL;
ALTER TABLE models ALTER COLUMN api_doc SET STORAGE EXTERNAL;
