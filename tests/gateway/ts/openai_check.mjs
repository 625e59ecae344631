// The OpenAI Node SDK against the gateway's OpenAI-compatible API (its base URL in GW): a chat
// completion, a stream with usage, a tool call, a JSON schema answer, an error, the model list.
// Prints one JSON line for the Python test to check.
import OpenAI from 'openai';

const client = new OpenAI({ apiKey: 'k', baseURL: `${process.env.GW}/v1`, maxRetries: 0 });
const user = (content) => [{ role: 'user', content }];
const out = {};

const answer = await client.chat.completions.create({
  model: 'local', messages: user('What is 17 * (3 + 4)?'),
});
out.text = answer.choices[0].message.content;
out.finish = answer.choices[0].finish_reason;

const stream = await client.chat.completions.create({
  model: 'local', messages: user('What is 2 + 2?'), stream: true,
  stream_options: { include_usage: true },
});
out.streamed = '';
for await (const chunk of stream) {
  out.streamed += chunk.choices[0]?.delta?.content ?? '';
  if (chunk.usage) out.usage = chunk.usage;
}

const calculator = {
  type: 'function',
  function: {
    name: 'calculator', description: 'Evaluate an arithmetic expression exactly.',
    parameters: { type: 'object', properties: { expression: { type: 'string' } }, required: ['expression'] },
  },
};
const called = await client.chat.completions.create({
  model: 'local', messages: user('What is 6 * 7?'), tools: [calculator], tool_choice: 'required',
});
out.toolCall = called.choices[0].message.tool_calls[0].function;

const schema = { type: 'object', properties: { n: { type: 'integer', minimum: 4 } }, required: ['n'] };
const json = await client.chat.completions.create({
  model: 'local', messages: user('a number'),
  response_format: { type: 'json_schema', json_schema: { name: 'n', schema, strict: true } },
});
out.json = JSON.parse(json.choices[0].message.content);

try {
  await client.chat.completions.create({ model: 'no-such-model', messages: user('x') });
} catch (error) {
  out.error = { status: error.status, code: error.code, name: error.constructor.name };
}

out.models = [];
for await (const model of client.models.list()) out.models.push(model.id);
console.log(JSON.stringify(out));
