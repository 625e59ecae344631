// The official TypeScript SDK against the gateway (its base URL in GW): a message, a stream,
// a token count, an error, the model list. Prints one JSON line for the Python test to check.
import Anthropic from '@anthropic-ai/sdk';

const client = new Anthropic({ apiKey: 'k', baseURL: process.env.GW, maxRetries: 0 });
const user = (content) => [{ role: 'user', content }];
const out = {};

const message = await client.messages.create({
  model: 'local', max_tokens: 64, messages: user('What is 17 * (3 + 4)?'),
});
out.text = message.content[0].text;
out.requestId = message._request_id;

const stream = client.messages.stream({ model: 'local', max_tokens: 64, messages: user('What is 2 + 2?') });
out.deltas = 0;
stream.on('text', () => { out.deltas += 1; });
out.streamed = (await stream.finalMessage()).content[0].text;

out.count = await client.messages.countTokens({ model: 'local', messages: user('hello') });

try {
  await client.messages.create({ model: 'no-such-model', max_tokens: 5, messages: user('x') });
} catch (error) {
  out.error = { status: error.status, type: error.error?.error?.type, name: error.constructor.name };
}

out.models = (await client.models.list()).data.map((model) => model.id);
console.log(JSON.stringify(out));
