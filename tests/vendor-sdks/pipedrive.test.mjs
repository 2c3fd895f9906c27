// Pipedrive's official Node client (`pipedrive`, its v2 API) against `ferry sandbox`'s Pipedrive
// emulator: cursor paging, the source-id custom field, one-by-one writes (Pipedrive has no batch
// or upsert endpoint), search by custom field, marketing_status, field metadata (v2 and v1 lists,
// one field, creating an enum field with options), and the errors ferry relies on.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import axios from "axios";
import { v1, v2 } from "pipedrive";
import { startSandbox, thrown } from "./lib/sandbox.mjs";

function apis(url, token) {
  const config = new v2.Configuration({ apiKey: token, basePath: `${url}/api/v2` });
  return {
    config,
    persons: new v2.PersonsApi(config),
    orgs: new v2.OrganizationsApi(config),
    personFields: new v2.PersonFieldsApi(config),
  };
}

describe("pipedrive: pipedrive (v2)", () => {
  let sb;
  let pd;
  before(async () => {
    sb = await startSandbox("pipedrive", { records: 250 });
    pd = apis(sb.url, sb.env.PIPEDRIVE_TOKEN);
  });
  after(() => sb?.stop());

  test("users/me (v1) names the token's company: the connector's account identity", async () => {
    const config = new v1.Configuration({ apiKey: sb.env.PIPEDRIVE_TOKEN, basePath: `${sb.url}/v1` });
    const me = await new v1.UsersApi(config).getCurrentUser();
    assert.equal(me.success, true);
    assert.ok(Number.isInteger(me.data.company_id) && me.data.company_id > 0, "a numeric company_id");
    assert.equal(typeof me.data.company_name, "string");
    assert.equal(typeof me.data.company_domain, "string");
  });

  test("lists persons and organizations through next_cursor to the end, as many as were seeded", async () => {
    for (const [list, expected, limit] of [
      [(p) => pd.persons.getPersons(p), sb.seeded.contacts, 100],
      [(p) => pd.orgs.getOrganizations(p), sb.seeded.companies, 20],
    ]) {
      const ids = new Set();
      let cursor;
      let pages = 0;
      do {
        const res = await list({ limit, cursor });
        assert.equal(res.success, true);
        pages += 1;
        for (const r of res.data) {
          assert.equal(typeof r.id, "number");
          assert.ok(!Number.isNaN(Date.parse(r.add_time)), "RFC 3339 add_time");
          ids.add(r.id);
        }
        cursor = res.additional_data?.next_cursor ?? undefined;
      } while (cursor);
      assert.equal(ids.size, expected);
      assert.ok(pages > 1);
    }
  });

  test("consent: seeded opt-outs read as marketing_status unsubscribed, never subscribed", async () => {
    const statuses = new Map();
    let cursor;
    do {
      const res = await pd.persons.getPersons({ limit: 500, cursor, include_fields: "marketing_status" });
      for (const p of res.data) statuses.set(p.marketing_status, (statuses.get(p.marketing_status) ?? 0) + 1);
      cursor = res.additional_data?.next_cursor ?? undefined;
    } while (cursor);
    assert.ok(statuses.get("unsubscribed") > 0);
    assert.equal(statuses.get("subscribed"), undefined);
    for (const s of statuses.keys()) assert.ok(["no_consent", "unsubscribed"].includes(s), s);
  });

  test("the source-id field, writes with per-record results, search by it, and read back", async () => {
    const field = await pd.personFields.addPersonField({
      AddPersonFieldRequest: { field_name: "Ferry source id", field_type: "varchar" },
    });
    assert.equal(field.success, true);
    const key = field.data.field_code;
    assert.match(key, /^[0-9a-f]{40}$/);
    // The connector's `prepare` finds it by name through the cursor-paged fields list.
    const listed = [];
    let fieldCursor;
    do {
      const page = await pd.personFields.getPersonFields({ limit: 10, cursor: fieldCursor });
      listed.push(...page.data);
      fieldCursor = page.additional_data?.next_cursor ?? undefined;
    } while (fieldCursor);
    const mine = listed.filter((f) => f.field_name === "Ferry source id");
    assert.equal(mine.length, 1);
    assert.equal(mine[0].field_code, key);
    assert.equal(mine[0].field_type, "varchar");
    assert.equal(mine[0].is_custom_field, true);

    const org = await pd.orgs.addOrganization({ AddOrganizationRequest: { name: "Sdk Co" } });
    assert.equal(org.success, true);

    // No batch endpoint: ferry sends records concurrently and keeps one outcome per record.
    const inputs = [
      { name: "Ada Lovelace", emails: [{ value: "ada@sdk.example.com", primary: true, label: "work" }], org_id: org.data.id, marketing_status: "unsubscribed", custom_fields: { [key]: "sdk-1" } },
      { emails: [{ value: "nameless@sdk.example.com", primary: true }], custom_fields: { [key]: "sdk-2" } },
      { name: "Grace Hopper", emails: [{ value: "grace@sdk.example.com", primary: true }], custom_fields: { [key]: "sdk-3" } },
    ];
    const outcomes = await Promise.allSettled(inputs.map((p) => pd.persons.addPerson({ AddPersonRequest: p })));
    assert.equal(outcomes[0].status, "fulfilled");
    assert.equal(outcomes[1].status, "rejected");
    assert.equal(outcomes[1].reason.success, false);
    assert.equal(outcomes[2].status, "fulfilled");
    const ada = outcomes[0].value.data;
    assert.equal(ada.org_id, org.data.id);
    assert.equal(ada.custom_fields[key], "sdk-1");

    // Find by source id the way the connector does: exact custom-field search, then confirm.
    const found = await pd.persons.searchPersons({ term: "sdk-1", fields: "custom_fields", exact_match: true });
    assert.equal(found.success, true);
    const hits = found.data.items.map((i) => i.item.id);
    assert.deepEqual(hits, [ada.id]);
    const confirmed = await pd.persons.getPersons({ ids: hits.join(","), custom_fields: key });
    assert.equal(confirmed.data[0].custom_fields[key], "sdk-1");

    // PATCH updates in place; the opt-out survives and reads back.
    const updated = await pd.persons.updatePerson({ id: ada.id, UpdatePersonRequest: { job_title: undefined, name: "Ada King" } });
    assert.equal(updated.data.name, "Ada King");
    const back = await pd.persons.getPerson({ id: ada.id, include_fields: "marketing_status", custom_fields: key });
    assert.equal(back.data.marketing_status, "unsubscribed");
    assert.equal(back.data.custom_fields[key], "sdk-1");
    assert.equal(back.data.emails[0].value, "ada@sdk.example.com");

    // A person created without an opt-out is not "subscribed": no consent is invented.
    const grace = await pd.persons.getPerson({ id: outcomes[2].value.data.id, include_fields: "marketing_status" });
    assert.equal(grace.data.marketing_status, "no_consent");
  });

  test("field metadata: seeded custom fields under 40-hex keys with option ids, v2 and v1; an enum field created with options takes them", async () => {
    const orgFields = new v2.OrganizationFieldsApi(pd.config);
    const all = [];
    let cursor;
    do {
      const res = await orgFields.getOrganizationFields({ limit: 500, cursor });
      assert.equal(res.success, true);
      all.push(...res.data);
      cursor = res.additional_data?.next_cursor ?? undefined;
    } while (cursor);
    const byName = (list, name) => list.find((f) => f.field_name === name);
    const [region, seats, tier] = ["Region", "Seats", "Tier"].map((n) => byName(all, n));
    assert.deepEqual([region.field_type, seats.field_type, tier.field_type], ["varchar", "double", "enum"]);
    for (const f of [region, seats, tier]) {
      assert.equal(f.is_custom_field, true);
      assert.match(f.field_code, /^[0-9a-f]{40}$/);
    }
    assert.equal(region.options, null);
    assert.deepEqual(tier.options.map((o) => o.label), ["Gold", "Silver", "Bronze"]);
    assert.ok(tier.options.every((o) => Number.isInteger(o.id)), "custom option ids are numbers");
    assert.equal(byName(all, "Name").is_custom_field, false);
    const one = await orgFields.getOrganizationField({ field_code: tier.field_code });
    assert.deepEqual(one.data, tier);

    // Seeded organizations hold the Tier as an option id and Seats as a number.
    const orgs = await pd.orgs.getOrganizations({ limit: 100, custom_fields: `${tier.field_code},${seats.field_code}` });
    const ids = new Set(tier.options.map((o) => o.id));
    const tiers = orgs.data.map((o) => o.custom_fields[tier.field_code]).filter((v) => v !== null);
    assert.ok(tiers.length > 0 && tiers.every((v) => ids.has(v)), "tiers are option ids");
    assert.ok(orgs.data.some((o) => typeof o.custom_fields[seats.field_code] === "number"));
    assert.equal(Object.keys(orgs.data[0].custom_fields).length, 2, "only the fields asked for");

    // v1 lists the same keys, with the same options.
    const v1config = new v1.Configuration({ apiKey: sb.env.PIPEDRIVE_TOKEN, basePath: `${sb.url}/v1` });
    const legacy = await new v1.OrganizationFieldsApi(v1config).getOrganizationFields({ limit: 500 });
    const v1tier = legacy.data.find((f) => f.name === "Tier");
    assert.equal(v1tier.key, tier.field_code);
    assert.deepEqual(v1tier.options, tier.options);

    const persons = await pd.personFields.getPersonFields({ limit: 500 });
    assert.equal(byName(persons.data, "Favourite Colour").field_type, "varchar");
    assert.equal(byName(persons.data, "Loyalty Points").field_type, "double");

    // Create an enum field with options; a record takes an option id, and refuses another.
    const created = await pd.personFields.addPersonField({
      AddPersonFieldRequest: { field_name: "Plan", field_type: "enum", options: [{ label: "Free" }, { label: "Pro" }] },
    });
    assert.equal(created.success, true);
    const code = created.data.field_code;
    assert.match(code, /^[0-9a-f]{40}$/);
    const pro = created.data.options.find((o) => o.label === "Pro");
    const person = await pd.persons.addPerson({ AddPersonRequest: { name: "Plan Person", custom_fields: { [code]: pro.id } } });
    assert.equal(person.data.custom_fields[code], pro.id);
    const bad = await thrown(() => pd.persons.addPerson({ AddPersonRequest: { name: "X", custom_fields: { [code]: 999999 } } }));
    assert.equal(bad.success, false);
    assert.equal(bad.code, "ERR_SCHEMA_VALIDATION_FAILED");
    const listed = await pd.personFields.getPersonFields({ limit: 500 });
    assert.deepEqual(byName(listed.data, "Plan").options, created.data.options);
  });

  test("a bad token is rejected with Pipedrive's 401 envelope", async () => {
    const bad = apis(sb.url, "not-the-token");
    const e = await thrown(() => bad.persons.getPersons({ limit: 1 }));
    assert.equal(e.success, false);
    assert.equal(e.errorCode, 401);
    assert.equal(e.error, "unauthorized access");
  });

  test("an invalid record is rejected with Pipedrive's 400 validation envelope", async () => {
    const e = await thrown(() => pd.persons.addPerson({ AddPersonRequest: { name: "X", org_id: 999999 } }));
    assert.equal(e.success, false);
    assert.equal(typeof e.error, "string");
    assert.equal(e.code, "ERR_SCHEMA_VALIDATION_FAILED");
    const bad = await thrown(() => pd.persons.addPerson({ AddPersonRequest: { name: "X", marketing_status: "maybe" } }));
    assert.equal(bad.success, false);
  });

  test("the burst window is a 429 with x-ratelimit-* headers", async () => {
    // The SDK's interceptor hands back only the body; its functional API, given a plain axios,
    // keeps the response so the headers can be checked.
    const fp = v2.PersonsApiFp(pd.config);
    const send = async () => {
      const request = await fp.getPersons({ limit: 1 });
      return request(axios.create(), pd.config.basePath).then(
        (r) => r,
        (e) => e.response,
      );
    };
    const answers = await Promise.all(Array.from({ length: 120 }, send));
    const limited = answers.find((r) => r.status === 429);
    assert.ok(limited, "a 429 among 120 requests in one window");
    assert.equal(limited.data.success, false);
    assert.equal(limited.data.errorCode, 429);
    assert.equal(limited.headers["x-ratelimit-remaining"], "0");
    assert.ok(Number(limited.headers["x-ratelimit-limit"]) > 0);
    assert.ok(Number(limited.headers["x-ratelimit-reset"]) >= 0);
    assert.ok(limited.headers["x-daily-ratelimit-token-remaining"] !== undefined);
    // Through the SDK's class API the same 429 is its rejection with the envelope.
    const e = await thrown(() => pd.persons.getPersons({ limit: 1 }));
    assert.equal(e.errorCode, 429);
  });
});

describe("pipedrive: injected 429s (ferry sandbox --throttle)", () => {
  test("an injected 429 carries Pipedrive's body", async () => {
    const sb = await startSandbox("pipedrive", { records: 10, flags: ["--throttle", "pipedrive=2", "--retry-after", "1"] });
    try {
      const pd = apis(sb.url, sb.env.PIPEDRIVE_TOKEN);
      const results = await Promise.allSettled([1, 2, 3, 4].map(() => pd.persons.getPersons({ limit: 5 })));
      const rejected = results.filter((r) => r.status === "rejected").map((r) => r.reason);
      assert.equal(rejected.length, 2);
      for (const e of rejected) {
        assert.equal(e.success, false);
        assert.equal(e.errorCode, 429);
      }
    } finally {
      await sb.stop();
    }
  });
});
