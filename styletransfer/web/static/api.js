// The API's description, drawn from the server's own OpenAPI document: every path and method,
// its summary and description, its parameters and its form fields.
'use strict';

function element(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function resolve(doc, schema) {
  if (schema && schema.$ref) {
    return schema.$ref.split('/').slice(1).reduce((node, key) => node[key], doc);
  }
  return schema || {};
}

// Properties of an object schema, with those of the schemas it is made of (allOf).
function properties(doc, schema) {
  schema = resolve(doc, schema);
  const own = Object.entries(schema.properties || {});
  return (schema.allOf || []).reduce((all, part) => all.concat(properties(doc, part)), own);
}

function fieldsTable(rows) {
  const table = element('table');
  for (const [name, type, text] of rows) {
    const tr = element('tr');
    tr.append(element('td', name), element('td', type), element('td', text || ''));
    table.append(tr);
  }
  return table;
}

async function draw() {
  const doc = await (await fetch('/openapi.json')).json();
  document.getElementById('about').textContent = doc.info.description || '';
  const box = document.getElementById('endpoints');
  box.textContent = '';
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [verb, op] of Object.entries(methods)) {
      const div = element('div', undefined, 'endpoint');
      const head = element('div');
      head.append(element('span', verb.toUpperCase(), 'verb'), element('code', path));
      div.append(head, element('p', op.summary || ''));
      if (op.description) div.append(element('p', op.description));
      const rows = (op.parameters || []).map(
        (p) => [p.name, p.in + ' ' + (resolve(doc, p.schema).type || ''), p.description]);
      const body = op.requestBody && op.requestBody.content;
      if (body) {
        for (const media of Object.values(body)) {
          for (const [name, prop] of properties(doc, media.schema)) {
            const p = resolve(doc, prop);
            rows.push([name, 'form ' + (p.type || p.format || ''), p.description || p.title]);
          }
        }
      }
      if (rows.length) div.append(fieldsTable(rows));
      const answers = Object.entries(op.responses || {}).map(
        ([status, r]) => status + ' ' + (r.description || '')).join('; ');
      div.append(element('p', 'Answers: ' + answers));
      box.append(div);
    }
  }
}

draw().catch((e) => {
  document.getElementById('endpoints').textContent = 'could not read /openapi.json: ' + e;
});
