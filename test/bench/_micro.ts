import { performance } from 'node:perf_hooks';
import { EventEmitter } from 'node:events';
class A { #t='x'; getToken(){ return Promise.resolve(this.#t);} }
class B { #t='x'; #d=Infinity; #h=0; getToken(){ const now=performance.now(); if (now < this.#d){ this.#h+=1; return Promise.resolve(this.#t);} return Promise.reject(); } }
class C extends EventEmitter { #m:any={token:'x',deadline:Infinity,refreshAheadAt:Infinity}; #v=true; #c=false; #h=0;
  getToken(){ const e=this.#m; if (e!==undefined && this.#v && !this.#c){ const now=performance.now(); if (now<e.deadline){ this.#h+=1; if (now>=e.refreshAheadAt){} return Promise.resolve(e.token);} } return Promise.reject(); } }
class D { #m:any={token:'x',deadline:Infinity}; getToken(){ const e=this.#m; if (Date.now()<e.deadline) return Promise.resolve(e.token); return Promise.reject(); } }
const v:any = { a: new A(), b: new B(), c: new C(), d: new D() };
async function measure(o:any, n:number){ const C=100; const per=n/C; const loop=async()=>{for(let i=0;i<per;i++) await o.getToken();}; const s=performance.now(); await Promise.all(Array.from({length:C},loop)); return n/((performance.now()-s)/1000); }
for (const k in v) await measure(v[k], 1e6);
const res:any = {a:[],b:[],c:[],d:[]};
for (let r=0;r<7;r++) for (const k in v) res[k].push(await measure(v[k], 2e6));
for (const k in res) { const s=res[k].sort((x:number,y:number)=>x-y); console.log(k, Math.round(s[3]/1e3)+'k', res[k].map((x:number)=>Math.round(x/1e3)).join(' ')); }
let t=performance.now(); let x=0; for(let i=0;i<1e7;i++) x+=performance.now(); console.log('perf.now ns', (performance.now()-t)/1e7*1e6);
t=performance.now(); for(let i=0;i<1e7;i++) x+=Date.now(); console.log('Date.now ns', (performance.now()-t)/1e7*1e6);
