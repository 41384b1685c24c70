-- The trigram index of the narrow search table, over the search text with `.` and `-` read as
-- letters: trigrams stop at characters that are not letters or digits, so a query word such as
-- `4.5` or `gpt-4o` had few or no trigrams of its own and its search read every row holding the
-- other words (`gpt 4.5 pro`: 6,197 rows read for 227 matches at 100,000 models). Bridged, `4.5`
-- is the trigram `4z5`. The index only narrows the rows read: the search still tests each word
-- against the search text as it is (shared/db/api_reads.py, `_bridged`), so a query with a `z`
-- matches exactly what it did.
CREATE INDEX model_search_bridged_idx ON model_search USING gin (translate(haystack, '.-', 'zz') gin_trgm_ops);
DROP INDEX model_search_trgm_idx;
ANALYZE model_search;
