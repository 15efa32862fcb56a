-- Issue 13: videos are first-class targets. A video keeps an optional
-- title (at most 100 characters, checked by the server); a gift keeps the
-- sender's optional message (at most 150 characters), shown with it.
ALTER TABLE videos ADD COLUMN title TEXT;
ALTER TABLE gifts ADD COLUMN message TEXT;
-- A creator's videos, newest first, paged by (created_ms, video).
CREATE INDEX videos_creator ON videos (creator, created_ms, video);
