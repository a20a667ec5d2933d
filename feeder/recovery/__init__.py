"""Loss recovery: the feeder keeps what it sent and answers re-requests; receivers ask for gaps.

``buffer`` holds the last packets of each channel; ``protocol`` is the request/reply format
(docs/wire-format.md section 13); ``server`` answers requests inside the feeder's event loop,
rate-limited; ``client`` is the receiver's side: it turns the sequence tracker's missing ranges
into paced, retried requests and tells recovered from unrecoverable.
"""
