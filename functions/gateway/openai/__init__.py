"""The gateway's OpenAI-compatible API: Chat Completions and Responses over the same router."""
