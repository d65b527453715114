// The official `openai` package streams a chat completion and a completion from ragd serve;
// the streamed text must equal the non-streamed text and usage must come in the last chunk.
// usage: node openai_client.js BASE_URL MODEL
const { OpenAI } = require('openai');
const assert = require('node:assert/strict');

async function main() {
  const [baseURL, model] = process.argv.slice(2);
  const client = new OpenAI({ baseURL: baseURL + '/v1', apiKey: 'not-needed', maxRetries: 0 });
  const models = await client.models.list();
  assert.equal(models.data[0].id, model);

  const chatReq = { model, messages: [{ role: 'user', content: '你好，请介绍一下黄芪。' }],
                    max_tokens: 24, temperature: 0, ignore_eos: true };
  const full = await client.chat.completions.create(chatReq);
  assert.equal(full.object, 'chat.completion');
  const stream = await client.chat.completions.create({ ...chatReq, stream: true,
                                                        stream_options: { include_usage: true } });
  let text = '', usage = null, n = 0, finish = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    assert.equal(usage, null, 'usage must only come in the last chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta.content || '';
      if (c.finish_reason) finish = c.finish_reason;
    }
    n++;
  }
  assert.ok(n > 2);
  assert.equal(text, full.choices[0].message.content);
  assert.equal(finish, full.choices[0].finish_reason);
  assert.deepEqual(usage, full.usage);

  const cmplReq = { model, prompt: 'The quick brown fox', max_tokens: 24, temperature: 0,
                    ignore_eos: true };
  const cfull = await client.completions.create(cmplReq);
  const cstream = await client.completions.create({ ...cmplReq, stream: true });
  let ctext = '';
  for await (const chunk of cstream) {
    assert.equal(chunk.object, 'text_completion');
    ctext += chunk.choices[0].text;
  }
  assert.equal(ctext, cfull.choices[0].text);

  // errors surface as the SDK's typed errors
  await assert.rejects(client.chat.completions.create({ ...chatReq, temperature: 5 }),
                       (e) => e.status === 400 && /temperature/.test(e.message));
  console.log('openai npm client: chat + completion streams ok (' + n + ' chunks)');
}

main().catch((e) => { console.error(e); process.exit(1); });
