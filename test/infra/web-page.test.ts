import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import { describe, expect, it } from 'vitest';
import { inlinedWebPage, WEB_PAGE_DIR, WebPage } from '../../lib/web-page.ts';

/** The web page as the stack serves it: `GET /` on the REST API, a mock integration, no auth. */

interface MethodProperties {
  Integration: {
    IntegrationResponses: {
      ResponseTemplates: Record<string, string>;
      ResponseParameters: Record<string, string>;
    }[];
  };
}

function synthPage() {
  const stack = new Stack(new App(), 'WebPageTest');
  const api = new apigw.RestApi(stack, 'Api');
  api.root.addResource('predict').addMethod('POST', new apigw.MockIntegration(), { apiKeyRequired: true });
  new WebPage(stack, 'WebPage', { api });
  return { template: Template.fromStack(stack) };
}

describe('WebPage construct', () => {
  const { template } = synthPage();

  it('inlines web/app.js into web/index.html and allows exactly that script by its hash', () => {
    const { html, policy } = inlinedWebPage();
    const script = readFileSync(path.join(WEB_PAGE_DIR, 'app.js'), 'utf8');
    expect(html).toContain(`<script type="module">${script}</script>`);
    expect(html).not.toContain('src="./app.js"');
    const hash = createHash('sha256').update(script).digest('base64');
    expect(policy).toContain(`script-src 'sha256-${hash}'`);
    expect(policy).toContain("connect-src 'self'");
    expect(html).toContain(
      `<meta charset="utf-8">\n<meta http-equiv="Content-Security-Policy" content="${policy}">`,
    );
  });

  it('adds GET / without authorization, answering the page byte-exact through $util.base64Decode', () => {
    const methods = template.findResources('AWS::ApiGateway::Method', { Properties: { HttpMethod: 'GET' } });
    const [get] = Object.values(methods) as { Properties: MethodProperties }[];
    expect(Object.keys(methods)).toHaveLength(1);
    expect(get.Properties).toMatchObject({
      AuthorizationType: 'NONE',
      ApiKeyRequired: false,
      Integration: { Type: 'MOCK', RequestTemplates: { 'application/json': '{"statusCode": 200}' } },
    });
    const [response] = get.Properties.Integration.IntegrationResponses;
    const { html } = inlinedWebPage();
    for (const type of ['text/html', 'application/json']) {
      const match = /^\$util\.base64Decode\("([A-Za-z0-9+/=]+)"\)$/.exec(response.ResponseTemplates[type]);
      expect(match, type).not.toBeNull();
      expect(Buffer.from(match?.[1] ?? '', 'base64').toString('utf8')).toBe(html);
    }
    expect(response.ResponseParameters).toEqual({
      'method.response.header.Content-Type': "'text/html; charset=utf-8'",
      'method.response.header.X-Frame-Options': "'DENY'",
      'method.response.header.Cache-Control': "'no-cache'",
      'method.response.header.X-Content-Type-Options': "'nosniff'",
    });
    // Static header values are quoted with ', so none may contain one.
    for (const v of Object.values(response.ResponseParameters)) expect(v).toMatch(/^'[^']*'$/);
    // A mapping template is limited to 300 KB.
    expect(response.ResponseTemplates['text/html'].length).toBeLessThan(300_000);
    // The predict method keeps its API key.
    template.hasResourceProperties('AWS::ApiGateway::Method', { HttpMethod: 'POST', ApiKeyRequired: true });
  });

  it('outputs the page URL (the stage root)', () => {
    const outputs = template.findOutputs('*', { Description: 'The web page (paste the API key there)' });
    expect(Object.keys(outputs)).toHaveLength(1);
  });
});
