import { curlCommand, hideToken, shellQuote } from '../curl';
import { shapeModels } from '../models';
import { formatValue, parseValues, predictRequest, resultRows } from '../predict';
import { classifyFiles, nameFromFile, nameFromParams } from '../upload';

const [model] = shapeModels([
  {
    name: 'iris',
    version: 3,
    versions: [1, 3],
    inputs: [{ name: 'x', dtype: 'float32', shape: [null, 4] }],
    label_names: ['setosa', 'versicolor', 'virginica']
  }
]);

describe('try-it form', () => {
  it('reads a row, a list of rows, or bare numbers', () => {
    expect(parseValues('[1, 2.5, 3, 4]')).toEqual([[1, 2.5, 3, 4]]);
    expect(parseValues(' [[1,2,3,4], [5,6,7,8]] ')).toEqual([
      [1, 2, 3, 4],
      [5, 6, 7, 8]
    ]);
    expect(parseValues('1, 2, 3, 4')).toEqual([[1, 2, 3, 4]]);
  });

  it('says what is wrong with the values', () => {
    expect(() => parseValues('')).toThrow('type the values');
    expect(() => parseValues('[1, 2')).toThrow('not JSON');
    expect(() => parseValues('[1, "a"]')).toThrow('row of numbers');
    expect(() => parseValues('[[1], 2]')).toThrow('row of numbers');
    expect(() => predictRequest(model, [[1, 2]])).toThrow(
      'iris takes 4 values per row; row 1 has 2'
    );
  });

  it('builds the request for one row or many', () => {
    expect(predictRequest(model, [[1, 2, 3, 4]])).toEqual({
      model: 'iris',
      version: 3,
      values: [1, 2, 3, 4]
    });
    expect(
      predictRequest(model, [
        [1, 2, 3, 4],
        [0, 0, 0, 0]
      ]).values
    ).toEqual([
      [1, 2, 3, 4],
      [0, 0, 0, 0]
    ]);
  });

  it('labels the outputs when the labels fit, else numbers them', () => {
    expect(resultRows([0.1, 0.7, 0.2], 1, model.labels)).toEqual([
      [
        { label: 'setosa', value: 0.1 },
        { label: 'versicolor', value: 0.7 },
        { label: 'virginica', value: 0.2 }
      ]
    ]);
    const two = resultRows([[1], [2]], 2, model.labels);
    expect(two).toEqual([[{ label: 'output_0', value: 1 }], [{ label: 'output_0', value: 2 }]]);
    expect(() => resultRows({ error: 'x' }, 1, [])).toThrow('list of outputs');
  });

  it('shows values to six significant digits', () => {
    expect(formatValue(0.700512345)).toBe('0.700512');
    expect(formatValue(1.5e-7)).toBe('1.50000e-7');
    expect(formatValue(3)).toBe('3');
  });
});

describe('copy curl', () => {
  it('quotes for the shell', () => {
    expect(shellQuote('http://h/x')).toBe('http://h/x');
    expect(shellQuote("it's")).toBe("'it'\\''s'");
  });

  it('names the token variable and posts the request to the given URL', () => {
    const request = predictRequest(model, [[1, 2, 3, 4]]);
    const url = 'https://hub.example.org/user/alice/tfaas/json';
    expect(curlCommand(url, request, true)).toBe(
      'curl -sS -H "Authorization: token $JUPYTERHUB_API_TOKEN" ' +
        "-H 'Content-Type: application/json' " +
        '-d \'{"model":"iris","values":[1,2,3,4],"version":3}\' ' +
        url
    );
    expect(curlCommand(url, request, false)).toContain('$JUPYTER_TOKEN');
  });

  it('reads a key from a file in the keyfile style', () => {
    const request = predictRequest(model, [[1, 2, 3, 4]]);
    const url = 'http://127.0.0.1:8888/tfaas/json';
    const home = { style: 'keyfile' as const, keyFile: '~/.tfaas/keys/my key.key' };
    expect(curlCommand(url, request, true, home)).toBe(
      'curl -sS -H "Authorization: Bearer $(cat ~/\'.tfaas/keys/my key.key\')" ' +
        "-H 'Content-Type: application/json' " +
        '-d \'{"model":"iris","values":[1,2,3,4],"version":3}\' ' +
        url
    );
    const plain = { style: 'keyfile' as const, keyFile: '/srv/keys/k.key' };
    expect(curlCommand(url, request, false, plain)).toContain(
      '"Authorization: Bearer $(cat /srv/keys/k.key)"'
    );
    expect(curlCommand(url, request, false, plain)).not.toContain('TOKEN');
  });

  it("names the token's variable in Swagger UI's line, never the token", () => {
    const line = "curl -X 'POST' -H 'Authorization: token s3cr3t' -d '{}' 'http://h/tfaas/json'";
    expect(hideToken(line, 's3cr3t', 'JUPYTER_TOKEN')).toBe(
      "curl -X 'POST' -H 'Authorization: token '\"$JUPYTER_TOKEN\"'' -d '{}' 'http://h/tfaas/json'"
    );
    expect(hideToken(line, '', 'JUPYTER_TOKEN')).toBe(line);
  });
});

describe('upload', () => {
  it('sorts the files into the form fields', () => {
    const roles = classifyFiles(['labels.txt', 'model.pb', 'params.json']);
    expect([...roles.entries()].sort()).toEqual([
      ['labels', 0],
      ['model', 1],
      ['params', 2]
    ]);
    expect(classifyFiles(['net.tar.gz']).get('model')).toBe(0);
  });

  it('refuses what it cannot upload', () => {
    expect(() => classifyFiles(['a.json'])).toThrow('no model file');
    expect(() => classifyFiles(['a.keras', 'b.zip'])).toThrow('two model files');
    expect(() => classifyFiles(['a.exe'])).toThrow('a.exe: not a model');
  });

  it('names the model after its file', () => {
    expect(nameFromFile('my model.keras')).toBe('my-model');
    expect(nameFromFile('saved.tar.gz')).toBe('saved');
    expect(nameFromFile('...')).toBe('model');
  });

  it('takes the name params.json gives', () => {
    expect(nameFromParams('{"name": " vk ", "model": "model.pb"}')).toBe('vk');
    expect(nameFromParams('{"model": "model.pb"}')).toBeNull();
    expect(nameFromParams('{not json')).toBeNull();
  });
});
