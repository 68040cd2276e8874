"""Values the reliability fixtures configure and the tests check against."""

JUDGE_KEY = "t-judge-key-31d8"
CHAT_KEY = "t-chat-key-77b0"
BODY_LIMIT = 32_768
JUDGE_QUEUE = 64
FLUSH_ROWS = 32
