"""Result images held by the gateway: copied from Genlook once, served under the gateway's own
signed URLs, kept for a retention period, then swept.

- `objects.py`: the object store (obstore: a directory, S3, GCS, Azure) and its Redis index
  (what is stored, until when, how many bytes);
- `links.py`: the signed, expiring links to a try-on's result, and their check;
- `fetch.py`: reading the image from Genlook's temporary URL;
- `retention.py`: how long a result is kept.
"""
